package stack

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
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
// archivist's database and Keycloak.
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
	a.archiveDatabase()
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
// the CA bundle into the container as MTLS_CERT, MTLS_KEY and MTLS_CA_CERT
// (or the names given).
func (a *Application) certSecrets(name, certVar, keyVar, caVar string) *map[string]awsecs.Secret {
	return &map[string]awsecs.Secret{
		certVar: awsecs.Secret_FromSecretsManager(a.secrets.Cert[name], nil),
		keyVar:  awsecs.Secret_FromSecretsManager(a.secrets.PrivateKey[name], nil),
		caVar:   awsecs.Secret_FromSecretsManager(a.secrets.CA, nil),
	}
}

// Extractor sandbox settings (docs/configuration.md) and the task sized for
// them: EXTRACT_WORKERS parses run at once, each in a child process limited
// to EXTRACT_MEMORY_LIMIT of address space, beside the agent process itself.
const (
	ExtractWorkers        = 4
	ExtractMemoryLimitMiB = 256
	ExtractTimeout        = "20s"
	ExtractMaxBytesMiB    = 20
	// ExtractorAgentBudgetMiB is the extractor's memory besides its workers:
	// the agent process (its hostile-document tests bound its peak RSS at
	// 300 MiB, which includes up to EXTRACT_WORKERS documents of
	// EXTRACT_MAX_BYTES held for the workers) with headroom.
	ExtractorAgentBudgetMiB = 512
	// ExtractorCPU is one vCPU, shared by the agent and up to four parses.
	ExtractorCPU = 1024

	// agentCPU and agentMemoryMiB size the other three agents' tasks.
	agentCPU       = 256
	agentMemoryMiB = 512

	// archivistTasks is the archivist's desired count: two tasks share the
	// PostgreSQL archive, so one may be replaced while the other serves.
	archivistTasks = 2
)

// ExtractorMemoryMiB is the extractor task's memory: the smallest Fargate
// size for ExtractorCPU that holds every worker at its limit plus the agent.
func ExtractorMemoryMiB() int {
	m, err := FargateMemoryMiB(ExtractorCPU, ExtractWorkers*ExtractMemoryLimitMiB+ExtractorAgentBudgetMiB)
	if err != nil {
		panic(err)
	}
	return m
}

// fargateSizes lists, per CPU units, the memory sizes (MiB) Fargate accepts
// for Linux tasks: from min to max in steps of step.
var fargateSizes = map[int]struct{ min, max, step int }{
	256:   {512, 2048, 512}, // 512, 1024, 2048 (1536 is refused; see FargateMemoryMiB)
	512:   {1024, 4096, 1024},
	1024:  {2048, 8192, 1024},
	2048:  {4096, 16384, 1024},
	4096:  {8192, 30720, 1024},
	8192:  {16384, 61440, 4096},
	16384: {32768, 122880, 8192},
}

// FargateMemoryMiB returns the smallest memory size Fargate accepts with
// cpu units that is at least needMiB, or an error when cpu is not a Fargate
// size or cannot have that much memory.
func FargateMemoryMiB(cpu, needMiB int) (int, error) {
	r, ok := fargateSizes[cpu]
	if !ok {
		return 0, fmt.Errorf("stack: %d is not a Fargate CPU size", cpu)
	}
	for m := r.min; m <= r.max; m += r.step {
		if cpu == 256 && m == 1536 {
			continue
		}
		if m >= needMiB {
			return m, nil
		}
	}
	return 0, fmt.Errorf("stack: %d CPU units allow at most %d MiB, %d MiB needed", cpu, r.max, needMiB)
}

// ExtractorEnvironment is the extractor's sandbox configuration.
func ExtractorEnvironment() map[string]string {
	return map[string]string{
		"EXTRACT_WORKERS":      strconv.Itoa(ExtractWorkers),
		"EXTRACT_MEMORY_LIMIT": strconv.Itoa(ExtractMemoryLimitMiB) + "MiB",
		"EXTRACT_TIMEOUT":      ExtractTimeout,
		"EXTRACT_MAX_BYTES":    strconv.Itoa(ExtractMaxBytesMiB) + "MiB",
	}
}

// AgentEnvironment is the plain environment of an agent's container
// (docs/configuration.md, Agents); the certificate material and the
// archive's password come as ECS secrets. The CRL comes by name
// (MTLS_CRL_SECRET_ID): the agent fetches it itself, again every
// MTLS_CRL_REFRESH (left to its default), so that a revocation applies
// without a redeploy. documentsURL is the documents bucket's s3:// URL,
// archiveDSN the archivist's ARCHIVE_DSN (without a password).
func AgentEnvironment(ag Agent, documentsURL, archiveDSN string) map[string]*string {
	env := map[string]*string{
		"AGENT_NAME":       jsii.String(ag.Name),
		"AGENT_ADDR":       jsii.String(":" + strconv.Itoa(ag.Port)),
		"OIDC_ISSUER":      jsii.String(Issuer),
		"OIDC_SERVER_NAME": jsii.String("keycloak." + Namespace),
		"OIDC_AUDIENCE":    jsii.String(Audience),
		"LOG_LEVEL":        jsii.String("info"),
		// A name, not a value: the task role may read this one secret.
		"MTLS_CRL_SECRET_ID": jsii.String(CRLSecretName),
	}
	for _, peer := range Agents {
		env[strings.ToUpper(peer.Name)+"_URL"] = jsii.String(peer.URL())
	}
	switch ag.Name {
	case "orchestrator":
		env["DOCUMENTS_URL"] = jsii.String(documentsURL)
	case "extractor":
		env["DOCUMENTS_URL"] = jsii.String(documentsURL)
		for k, v := range ExtractorEnvironment() {
			env[k] = jsii.String(v)
		}
	case "archivist":
		env["ARCHIVE_DSN"] = jsii.String(archiveDSN)
		env["ARCHIVE_DB_CA_PATH"] = jsii.String(AgentRDSCABundle)
	}
	return env
}

// agent defines one agent's task definition and service.
func (a *Application) agent(ag Agent) {
	st := a.Stack
	id := constructID(ag.Name)
	cpu, memory := agentCPU, agentMemoryMiB
	if ag.Name == "extractor" {
		cpu, memory = ExtractorCPU, ExtractorMemoryMiB()
	}
	td := awsecs.NewFargateTaskDefinition(st, jsii.String(id+"Task"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String("ca-a2a-" + ag.Name),
		Cpu:            jsii.Number(cpu),
		MemoryLimitMiB: jsii.Number(memory),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	documentsURL := *awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), a.Documents.BucketName()})
	archiveDSN := *ArchiveDSN(a.ArchiveDB.DbInstanceEndpointAddress(), a.ArchiveDB.DbInstanceEndpointPort())
	env := AgentEnvironment(ag, documentsURL, archiveDSN)
	secrets := a.certSecrets(ag.Name, "MTLS_CERT", "MTLS_KEY", "MTLS_CA_CERT")
	if ag.Name == "archivist" {
		(*secrets)["ARCHIVE_DB_PASSWORD"] = awsecs.Secret_FromSecretsManager(a.ArchiveDB.Secret(), jsii.String("password"))
	}
	linux := awsecs.NewLinuxParameters(st, jsii.String(id+"Linux"), &awsecs.LinuxParametersProps{})
	linux.DropCapabilities(awsecs.Capability_ALL)
	td.AddContainer(jsii.String("agent"), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(ag.Name),
		Image:         a.agentImage,
		Environment:   &env,
		Secrets:       secrets,
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
		// PostgreSQL serves several archivists: two tasks, and a deployment
		// starts the new ones before it stops the old (100 % / 200 %).
		props.DesiredCount = jsii.Number(archivistTasks)
	}
	a.secrets.grantDecrypt(td.ObtainExecutionRole())
	a.secrets.grantReadCRL(td.TaskRole())
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

// suppressTask records why the cdk-nag findings that every task definition
// shares are accepted.
func (a *Application) suppressTask(td awsecs.FargateTaskDefinition, what string) {
	cdknag.NagSuppressions_AddResourceSuppressions(td, &[]*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-ECS2"),
			Reason: jsii.String("The plain environment holds only non-secret configuration (names, URLs, ports); " +
				"the " + what + "'s certificate, key and CA bundle (and, where used, its database password) are injected as ECS secrets from Secrets Manager; " +
				"an agent's CRL secret is named (MTLS_CRL_SECRET_ID) and fetched by the agent with its task role."),
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
