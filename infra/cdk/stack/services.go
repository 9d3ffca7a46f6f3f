package stack

import (
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsefs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsservicediscovery"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Container settings shared by every service.
const (
	stopTimeoutSeconds = 30
	logRetention       = awslogs.RetentionDays_THREE_MONTHS
)

// services defines the agent image, the four agent services, the
// archivist's EFS volume and Keycloak.
func (a *Application) services() {
	st := a.Stack
	agentImage := awsecrassets.NewDockerImageAsset(st, jsii.String("AgentImage"), &awsecrassets.DockerImageAssetProps{
		Directory: jsii.String(a.cfg.RepoRoot),
		File:      jsii.String("Dockerfile"),
		Platform:  awsecrassets.Platform_LINUX_ARM64(),
	})
	a.agentImage = awsecs.ContainerImage_FromDockerImageAsset(agentImage)

	// First deployment order follows the health checks: every agent's
	// /health needs the JWKS from Keycloak, and the orchestrator's also needs
	// its three peers. Without the order, tasks that start first fail their
	// health checks and the circuit breaker may roll the stack back.
	a.keycloak()
	orchestrator, peers := Agents[0], Agents[1:]
	for _, ag := range peers {
		a.agent(ag)
		a.Services[ag.Name].Node().AddDependency(a.Services["keycloak"])
	}
	a.agent(orchestrator)
	a.Services[orchestrator.Name].Node().AddDependency(a.Services["keycloak"])
	for _, ag := range peers {
		a.Services[orchestrator.Name].Node().AddDependency(a.Services[ag.Name])
	}
}

// logGroup is a service's or function's log group with a fixed retention.
func (a *Application) logGroup(id string) awslogs.LogGroup {
	return awslogs.NewLogGroup(a.Stack, jsii.String(id), &awslogs.LogGroupProps{
		Retention:     logRetention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
}

// certSecrets are the ECS secrets that carry name's certificate, key and
// the CA into the container as MTLS_CERT, MTLS_KEY and MTLS_CA_CERT (or the
// names given).
func (a *Application) certSecrets(name, certVar, keyVar, caVar string) *map[string]awsecs.Secret {
	return &map[string]awsecs.Secret{
		certVar: awsecs.Secret_FromSecretsManager(a.secrets.Cert[name], nil),
		keyVar:  awsecs.Secret_FromSecretsManager(a.secrets.PrivateKey[name], nil),
		caVar:   awsecs.Secret_FromSecretsManager(a.secrets.CA, nil),
	}
}

// AgentEnvironment is the plain environment of an agent's container
// (DESIGN section 4); the certificate material comes as ECS secrets.
func AgentEnvironment(ag Agent, documentsURL string) map[string]*string {
	env := map[string]*string{
		"AGENT_NAME":       jsii.String(ag.Name),
		"AGENT_ADDR":       jsii.String(":" + strconv.Itoa(ag.Port)),
		"OIDC_ISSUER":      jsii.String(Issuer),
		"OIDC_SERVER_NAME": jsii.String("keycloak." + Namespace),
		"OIDC_AUDIENCE":    jsii.String(Audience),
		"LOG_LEVEL":        jsii.String("info"),
	}
	for _, peer := range Agents {
		env[strings.ToUpper(peer.Name)+"_URL"] = jsii.String(peer.URL())
	}
	switch ag.Name {
	case "orchestrator", "extractor":
		env["DOCUMENTS_URL"] = jsii.String(documentsURL)
	case "archivist":
		env["ARCHIVE_DSN"] = jsii.String("sqlite://" + ArchiveMount + "/archive.db")
		// The root filesystem is read-only: SQLite's rare temporary files
		// (large sorts, spilled statement journals) go next to the database.
		env["SQLITE_TMPDIR"] = jsii.String(ArchiveMount)
	}
	return env
}

// agent defines one agent's task definition and service.
func (a *Application) agent(ag Agent) {
	st := a.Stack
	id := constructID(ag.Name)
	td := awsecs.NewFargateTaskDefinition(st, jsii.String(id+"Task"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String("ca-a2a-" + ag.Name),
		Cpu:            jsii.Number(256),
		MemoryLimitMiB: jsii.Number(512),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	documentsURL := *awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), a.Documents.BucketName()})
	env := AgentEnvironment(ag, documentsURL)
	linux := awsecs.NewLinuxParameters(st, jsii.String(id+"Linux"), &awsecs.LinuxParametersProps{})
	linux.DropCapabilities(awsecs.Capability_ALL)
	c := td.AddContainer(jsii.String("agent"), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(ag.Name),
		Image:         a.agentImage,
		Environment:   &env,
		Secrets:       a.certSecrets(ag.Name, "MTLS_CERT", "MTLS_KEY", "MTLS_CA_CERT"),
		PortMappings: &[]*awsecs.PortMapping{{
			ContainerPort: jsii.Number(ag.Port),
			Protocol:      awsecs.Protocol_TCP,
			Name:          jsii.String(ag.Name),
		}},
		HealthCheck: &awsecs.HealthCheck{
			Command:     jsii.Strings("CMD", "/agent", "healthcheck"),
			Interval:    awscdk.Duration_Seconds(jsii.Number(30)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(30)),
		},
		StopTimeout:            awscdk.Duration_Seconds(jsii.Number(stopTimeoutSeconds)),
		ReadonlyRootFilesystem: jsii.Bool(true),
		User:                   jsii.String(AgentUID + ":" + AgentUID),
		LinuxParameters:        linux,
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(ag.Name),
			LogGroup:     a.logGroup(id + "Logs"),
		}),
	})
	props := &awsecs.FargateServiceProps{
		ServiceName:    jsii.String("ca-a2a-" + ag.Name),
		Cluster:        a.Cluster,
		TaskDefinition: td,
		DesiredCount:   jsii.Number(1),
		SecurityGroups: &[]awsec2.ISecurityGroup{a.SecurityGroups[ag.Name]},
		VpcSubnets:     a.Private,
		AssignPublicIp: jsii.Bool(false),
		CloudMapOptions: &awsecs.CloudMapOptions{
			Name:              jsii.String(ag.Name),
			CloudMapNamespace: a.Namespace,
			DnsRecordType:     awsservicediscovery.DnsRecordType_A,
			DnsTtl:            awscdk.Duration_Seconds(jsii.Number(10)),
		},
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Rollback: jsii.Bool(true)},
		PlatformVersion:   awsecs.FargatePlatformVersion_VERSION1_4,
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
	}

	switch ag.Name {
	case "orchestrator", "extractor":
		a.readDocuments(td)
	case "archivist":
		a.archiveVolume(td, c)
		// SQLite allows one writer: never run two archivist tasks on the
		// file, not even during a deployment.
		props.MinHealthyPercent = jsii.Number(0)
		props.MaxHealthyPercent = jsii.Number(100)
	}
	a.secrets.grantDecrypt(td.ObtainExecutionRole())
	a.TaskDefs[ag.Name] = td
	a.Services[ag.Name] = awsecs.NewFargateService(st, jsii.String(id+"Service"), props)
	a.suppressTask(td, "agent")
}

// readDocuments lets a task list the documents bucket and read its
// objects: s3:GetObject (HeadObject included) on the bucket's objects and
// s3:ListBucket on the bucket, without which S3 answers a missing key with
// 403 instead of 404.
func (a *Application) readDocuments(td awsecs.FargateTaskDefinition) {
	td.AddToTaskRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ListDocuments"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{a.Documents.BucketArn()},
	}))
	td.AddToTaskRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadDocuments"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &[]*string{a.Documents.ArnForObjects(jsii.String("*"))},
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(td.TaskRole(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Any object of the documents bucket may be a document to process; the statement is s3:GetObject on that one bucket."),
		AppliesTo: &[]interface{}{map[string]interface{}{"regex": `/^Resource::<Documents[0-9A-F]+\.Arn>\/\*$/`}},
	}}, jsii.Bool(true))
}

// archiveVolume mounts an encrypted EFS access point, owned by the
// distroless nonroot user, at ArchiveMount with IAM authorization and TLS.
func (a *Application) archiveVolume(td awsecs.FargateTaskDefinition, c awsecs.ContainerDefinition) {
	st := a.Stack
	// Only the archivist's task role may mount, only through a mount target
	// and only over TLS (CDK's default policy allows any principal that
	// reaches a mount target).
	policy := awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("ArchivistMountsThroughMountTarget"),
			Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(td.TaskRole().RoleArn())},
			Actions:    jsii.Strings("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]interface{}{"Bool": map[string]interface{}{"elasticfilesystem:AccessedViaMountTarget": "true"}},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("DenyWithoutTLS"),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings("*"),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
		}),
	}})
	fs := awsefs.NewFileSystem(st, jsii.String("ArchiveFs"), &awsefs.FileSystemProps{
		FileSystemPolicy: policy,
		// Despite its name, true only stops CDK from appending an allow for
		// every IAM principal; clients without IAM stay refused because the
		// policy above allows none.
		AllowAnonymousAccess:   jsii.Bool(true),
		Vpc:                    a.Vpc,
		VpcSubnets:             a.Private,
		SecurityGroup:          a.ArchiveFsSG,
		Encrypted:              jsii.Bool(true),
		KmsKey:                 a.DataKey,
		EnableAutomaticBackups: jsii.Bool(true),
		PerformanceMode:        awsefs.PerformanceMode_GENERAL_PURPOSE,
		ThroughputMode:         awsefs.ThroughputMode_ELASTIC,
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
	})
	ap := fs.AddAccessPoint(jsii.String("ArchiveAccessPoint"), &awsefs.AccessPointOptions{
		Path:      jsii.String("/archive"),
		PosixUser: &awsefs.PosixUser{Uid: jsii.String(AgentUID), Gid: jsii.String(AgentUID)},
		CreateAcl: &awsefs.Acl{OwnerUid: jsii.String(AgentUID), OwnerGid: jsii.String(AgentUID), Permissions: jsii.String("0750")},
	})
	td.AddVolume(&awsecs.Volume{
		Name: jsii.String("archive"),
		EfsVolumeConfiguration: &awsecs.EfsVolumeConfiguration{
			FileSystemId:      fs.FileSystemId(),
			TransitEncryption: jsii.String("ENABLED"),
			AuthorizationConfig: &awsecs.AuthorizationConfig{
				AccessPointId: ap.AccessPointId(),
				Iam:           jsii.String("ENABLED"),
			},
		},
	})
	c.AddMountPoints(&awsecs.MountPoint{
		ContainerPath: jsii.String(ArchiveMount),
		SourceVolume:  jsii.String("archive"),
		ReadOnly:      jsii.Bool(false),
	})
	td.AddToTaskRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("MountArchiveAccessPoint"),
		Actions:   jsii.Strings("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"),
		Resources: &[]*string{fs.FileSystemArn()},
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"elasticfilesystem:AccessPointArn": ap.AccessPointArn()},
		},
	}))
}

// suppressTask records why the cdk-nag findings that every task definition
// shares are accepted.
func (a *Application) suppressTask(td awsecs.FargateTaskDefinition, what string) {
	cdknag.NagSuppressions_AddResourceSuppressions(td, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-ECS2"),
			Reason: jsii.String("The plain environment holds only non-secret configuration (names, URLs, ports); " +
				"the " + what + "'s certificate, key and CA (and Keycloak's database credentials) are injected as ECS secrets from Secrets Manager."),
		},
		{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String("ecr:GetAuthorizationToken has no resource-level permission; image pulls are limited to the asset repository."),
			AppliesTo: &[]interface{}{"Resource::*"},
		},
	}, jsii.Bool(true))
}

// keycloakDockerfile is the Dockerfile of the Keycloak image, relative to
// the repository root (the build context, so the realm file is in it).
const keycloakDockerfile = "infra/cdk/keycloak/Dockerfile"
