package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsservicediscovery"
	"github.com/aws/jsii-runtime-go"
)

// keycloak defines Keycloak's PostgreSQL database and its Fargate service.
// The image (infra/cdk/keycloak/Dockerfile) is the official Keycloak image,
// pre-built for PostgreSQL, with the realm file baked into its import
// directory and the RDS CA bundle in its conf directory; its entrypoint
// writes the TLS certificate, key and CA that ECS injects from Secrets
// Manager to files, since Keycloak reads PEM only from files.
func (a *Application) keycloak() {
	st := a.Stack
	db := a.postgres(dbSpec{
		id: "KeycloakDb", database: "keycloak", user: "keycloak", secretName: KeycloakDBSecretName,
		sg: a.KeycloakDBSG, client: "Keycloak",
	})
	a.KeycloakDB = db

	image := awsecrassets.NewDockerImageAsset(st, jsii.String("KeycloakImage"), &awsecrassets.DockerImageAssetProps{
		Directory: jsii.String(a.cfg.RepoRoot),
		File:      jsii.String(keycloakDockerfile),
		Platform:  awsecrassets.Platform_LINUX_ARM64(),
	})

	td := awsecs.NewFargateTaskDefinition(st, jsii.String("KeycloakTask"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String("ca-a2a-keycloak"),
		Cpu:            jsii.Number(1024),
		MemoryLimitMiB: jsii.Number(2048),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	secrets := a.certSecrets("keycloak", "CA_A2A_TLS_CERT", "CA_A2A_TLS_KEY", "CA_A2A_TLS_CA")
	(*secrets)["KC_DB_USERNAME"] = awsecs.Secret_FromSecretsManager(db.Secret(), jsii.String("username"))
	(*secrets)["KC_DB_PASSWORD"] = awsecs.Secret_FromSecretsManager(db.Secret(), jsii.String("password"))
	jdbc := KeycloakJDBCURL(db.DbInstanceEndpointAddress(), db.DbInstanceEndpointPort())
	linux := awsecs.NewLinuxParameters(st, jsii.String("KeycloakLinux"), &awsecs.LinuxParametersProps{})
	linux.DropCapabilities(awsecs.Capability_ALL)
	td.AddContainer(jsii.String("keycloak"), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String("keycloak"),
		Image:         awsecs.ContainerImage_FromDockerImageAsset(image),
		Command:       jsii.Strings("start", "--optimized", "--import-realm"),
		Environment: &map[string]*string{
			"KC_DB_URL":             jdbc,
			"KC_HOSTNAME":           jsii.String("https://keycloak." + Namespace + ":8443"),
			"KC_HTTP_ENABLED":       jsii.String("false"),
			"KC_HTTPS_PORT":         jsii.String("8443"),
			"KC_HTTPS_CLIENT_AUTH":  jsii.String("request"),
			"KC_LOG_CONSOLE_OUTPUT": jsii.String("json"),
		},
		Secrets: secrets,
		PortMappings: &[]*awsecs.PortMapping{{
			ContainerPort: jsii.Number(KeycloakPort),
			Protocol:      awsecs.Protocol_TCP,
			Name:          jsii.String("keycloak"),
		}},
		// The image has no HTTP client and the management port requires TLS
		// client certificates too, so the check is that the HTTPS port accepts
		// connections.
		HealthCheck: &awsecs.HealthCheck{
			Command:     jsii.Strings("CMD", "/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8443"),
			Interval:    awscdk.Duration_Seconds(jsii.Number(30)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(180)),
		},
		StopTimeout:     awscdk.Duration_Seconds(jsii.Number(stopTimeoutSeconds)),
		User:            jsii.String("1000"),
		LinuxParameters: linux,
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String("keycloak"),
			LogGroup:     a.logGroup("KeycloakLogs"),
		}),
	})
	a.secrets.grantDecrypt(td.ObtainExecutionRole())
	a.TaskDefs["keycloak"] = td
	a.Services["keycloak"] = awsecs.NewFargateService(st, jsii.String("KeycloakService"), &awsecs.FargateServiceProps{
		ServiceName:    jsii.String("ca-a2a-keycloak"),
		Cluster:        a.Cluster,
		TaskDefinition: td,
		DesiredCount:   jsii.Number(1),
		SecurityGroups: &[]awsec2.ISecurityGroup{a.SecurityGroups["keycloak"]},
		VpcSubnets:     a.Private,
		AssignPublicIp: jsii.Bool(false),
		CloudMapOptions: &awsecs.CloudMapOptions{
			Name:              jsii.String("keycloak"),
			CloudMapNamespace: a.Namespace,
			DnsRecordType:     awsservicediscovery.DnsRecordType_A,
			DnsTtl:            awscdk.Duration_Seconds(jsii.Number(10)),
		},
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Rollback: jsii.Bool(true)},
		PlatformVersion:   awsecs.FargatePlatformVersion_VERSION1_4,
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
	})
	a.suppressTask(td, "Keycloak")
}
