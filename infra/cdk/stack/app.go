package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsservicediscovery"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Deployment is the whole app: both stacks and the constructs tests look at.
type Deployment struct {
	Secrets *Secrets
	App     *Application
}

// Build defines both stacks in app and applies the cdk-nag AwsSolutions
// pack to everything, so synth reports unsuppressed findings as errors.
func Build(app awscdk.App, cfg Config) *Deployment {
	sec := NewSecrets(app, cfg)
	a := NewApplication(app, cfg, sec)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return &Deployment{Secrets: sec, App: a}
}

// Application is the application stack and its main constructs.
type Application struct {
	Stack     awscdk.Stack
	Vpc       awsec2.Vpc
	Private   *awsec2.SubnetSelection
	Namespace awsservicediscovery.PrivateDnsNamespace
	Cluster   awsecs.Cluster
	DataKey   awskms.Key

	Documents awss3.Bucket
	Queue     awssqs.Queue
	DLQ       awssqs.Queue
	DLQAlarm  awscloudwatch.Alarm

	// KeycloakDB is Keycloak's PostgreSQL instance, ArchiveDB the
	// archivist's (a separate instance, see infra/README.md).
	KeycloakDB awsrds.DatabaseInstance
	ArchiveDB  awsrds.DatabaseInstance

	// AlarmTopic receives every alarm; Alarms are keyed by alarm name.
	AlarmTopic awssns.Topic
	Alarms     map[string]awscloudwatch.Alarm
	Dashboard  awscloudwatch.Dashboard

	// Services and SecurityGroups are keyed by agent name and "keycloak".
	Services       map[string]awsecs.FargateService
	TaskDefs       map[string]awsecs.FargateTaskDefinition
	SecurityGroups map[string]awsec2.SecurityGroup

	Function     awslambda.Function
	FunctionSG   awsec2.SecurityGroup
	KeycloakDBSG awsec2.SecurityGroup
	ArchiveDBSG  awsec2.SecurityGroup
	EndpointsSG  awsec2.SecurityGroup
	secrets      *importedSecrets
	cfg          Config
	agentImage   awsecs.ContainerImage
}

// NewApplication defines the application stack.
func NewApplication(scope constructs.Construct, cfg Config, sec *Secrets) *Application {
	st := awscdk.NewStack(scope, jsii.String(AppStackID), &awscdk.StackProps{
		Env:         cfg.Env(),
		Description: jsii.String("ca-a2a: mTLS + certificate-bound JWT agents, Keycloak, documents pipeline"),
	})
	a := &Application{
		Stack:          st,
		cfg:            cfg,
		Services:       map[string]awsecs.FargateService{},
		TaskDefs:       map[string]awsecs.FargateTaskDefinition{},
		SecurityGroups: map[string]awsec2.SecurityGroup{},
		Alarms:         map[string]awscloudwatch.Alarm{},
	}
	a.DataKey = awskms.NewKey(st, jsii.String("DataKey"), &awskms.KeyProps{
		Alias:             jsii.String("alias/ca-a2a-data"),
		Description:       jsii.String("ca-a2a: encrypts Keycloak's and the archive's databases and their credentials"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	a.secrets = importSecrets(st, sec)
	a.network()
	a.documents()
	a.securityGroups()
	a.services()
	a.lambda()
	a.monitoring()
	a.stackSuppressions()
	a.outputs()
	return a
}

// outputs are what an operator needs after cdk deploy.
func (a *Application) outputs() {
	for _, o := range []struct{ id, value, desc string }{
		{"DocumentsBucketName", *a.Documents.BucketName(), "put documents here (s3:ObjectCreated -> queue -> Lambda)"},
		{"DocumentsQueueUrl", *a.Queue.QueueUrl(), "the Lambda's event source"},
		{"DocumentsDlqUrl", *a.DLQ.QueueUrl(), "messages that failed 5 times; redrive after fixing the cause"},
		{"FunctionName", *a.Function.FunctionName(), "the documents Lambda"},
		{"ClusterName", *a.Cluster.ClusterName(), "ECS cluster of the agents and Keycloak (services ca-a2a-<name>)"},
		{"AlarmTopicArn", *a.AlarmTopic.TopicArn(), "SNS topic of every alarm (subscribe with -c alarmEmail=... or aws sns subscribe)"},
		{"DashboardName", *a.Dashboard.DashboardName(), "CloudWatch dashboard of the agents and the Lambda"},
		{"ArchiveDbEndpoint", *a.ArchiveDB.DbInstanceEndpointAddress(), "the archivist's PostgreSQL (database archive, user archivist, secret ca-a2a/archive-db)"},
	} {
		awscdk.NewCfnOutput(a.Stack, jsii.String(o.id), &awscdk.CfnOutputProps{
			Value:       jsii.String(o.value),
			Description: jsii.String(o.desc),
		})
	}
}

// sg creates a security group with no outbound rule of its own: egress is
// added rule by rule next to the matching ingress.
func (a *Application) sg(id, desc string) awsec2.SecurityGroup {
	return awsec2.NewSecurityGroup(a.Stack, jsii.String(id), &awsec2.SecurityGroupProps{
		Vpc:              a.Vpc,
		Description:      jsii.String(desc),
		AllowAllOutbound: jsii.Bool(false),
	})
}

// securityGroups creates one group per caller and callee and the rules of
// the default policy (docs/contract.md, Methods): Lambda -> orchestrator;
// orchestrator -> extractor, validator, archivist; Lambda and every agent
// -> Keycloak (the Lambda and the orchestrator get tokens; every agent
// fetches the JWKS to verify them); Keycloak -> its database; archivist ->
// its database. Each rule is both the callee's ingress and the caller's
// egress. Tasks may also send HTTPS anywhere: the interface endpoints and
// the S3 gateway endpoint (image layers, documents), whose prefix list has
// no CloudFormation-resolvable id; without NAT nothing else is routed.
func (a *Application) securityGroups() {
	for _, ag := range Agents {
		a.SecurityGroups[ag.Name] = a.sg(constructID(ag.Name)+"SG", "ca-a2a "+ag.Name+" agent")
	}
	a.SecurityGroups["keycloak"] = a.sg("KeycloakSG", "ca-a2a Keycloak")
	a.FunctionSG = a.sg("FunctionSG", "ca-a2a documents Lambda")
	a.KeycloakDBSG = a.sg("KeycloakDbSG", "ca-a2a Keycloak database")
	a.ArchiveDBSG = a.sg("ArchiveDbSG", "ca-a2a archive database")

	allow := func(to awsec2.SecurityGroup, from awsec2.SecurityGroup, port int, desc string) {
		from.Connections().AllowTo(to, awsec2.Port_Tcp(jsii.Number(port)), jsii.String(desc))
	}
	orch := a.SecurityGroups["orchestrator"]
	for _, ag := range Agents {
		switch ag.Name {
		case "orchestrator":
			allow(orch, a.FunctionSG, ag.Port, "Lambda calls the orchestrator")
		default:
			allow(a.SecurityGroups[ag.Name], orch, ag.Port, "orchestrator calls the "+ag.Name)
		}
	}
	kc := a.SecurityGroups["keycloak"]
	allow(kc, a.FunctionSG, KeycloakPort, "Lambda gets its token")
	for _, ag := range Agents {
		allow(kc, a.SecurityGroups[ag.Name], KeycloakPort, ag.Name+" fetches the JWKS (and the orchestrator its token)")
	}
	allow(a.KeycloakDBSG, kc, PostgresPort, "Keycloak uses its database")
	allow(a.ArchiveDBSG, a.SecurityGroups["archivist"], PostgresPort, "archivist uses its database")
	for _, name := range append(agentNames(), "keycloak") {
		allow(a.EndpointsSG, a.SecurityGroups[name], 443, name+" reaches AWS APIs")
		a.SecurityGroups[name].AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)),
			jsii.String("HTTPS to the S3 gateway endpoint (image layers, documents)"), nil)
	}
	allow(a.EndpointsSG, a.FunctionSG, 443, "Lambda reaches Secrets Manager")
}

func agentNames() []string {
	var names []string
	for _, ag := range Agents {
		names = append(names, ag.Name)
	}
	return names
}

// importedSecrets are the certificate secrets as the application stack sees
// them: imported by complete ARN with their key imported by ARN. Grants on
// imported resources go to the grantee's policies only, so the secrets
// stack never refers back to a role of this stack (which would make the
// two stacks depend on each other).
type importedSecrets struct {
	Key              awskms.IKey
	CA, CRL          awssecretsmanager.ISecret
	Cert, PrivateKey map[string]awssecretsmanager.ISecret
}

func importSecrets(st awscdk.Stack, sec *Secrets) *importedSecrets {
	key := awskms.Key_FromKeyArn(st, jsii.String("SecretsKeyRef"), sec.Key.KeyArn())
	imp := func(id string, s awssecretsmanager.Secret) awssecretsmanager.ISecret {
		return awssecretsmanager.Secret_FromSecretAttributes(st, jsii.String(id), &awssecretsmanager.SecretAttributes{
			SecretCompleteArn: s.SecretArn(),
			EncryptionKey:     key,
		})
	}
	out := &importedSecrets{
		Key:        key,
		CA:         imp("CaCertRef", sec.CA),
		CRL:        imp("CrlRef", sec.CRL),
		Cert:       map[string]awssecretsmanager.ISecret{},
		PrivateKey: map[string]awssecretsmanager.ISecret{},
	}
	for _, name := range Principals {
		out.Cert[name] = imp(constructID(name)+"CertRef", sec.Cert[name])
		out.PrivateKey[name] = imp(constructID(name)+"KeyRef", sec.PrivateKey[name])
	}
	return out
}

// grantReadCRL lets grantee, an agent's task role, read the CRL secret and
// no other: the agent fetches it itself (MTLS_CRL_SECRET_ID), at start and
// every MTLS_CRL_REFRESH. secretsmanager:GetSecretValue names that one
// secret's ARN, and kms:Decrypt of the secrets key is allowed only through
// Secrets Manager and only for that secret (Secrets Manager sends the
// secret's ARN as the encryption context), so even a wider grant on the
// secrets API could not decrypt another certificate secret with this role.
func (s *importedSecrets) grantReadCRL(grantee awsiam.IGrantable) {
	p := grantee.GrantPrincipal()
	p.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadCRLSecret"),
		Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
		Resources: &[]*string{s.CRL.SecretArn()},
	}))
	p.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DecryptCRLSecret"),
		Actions:   jsii.Strings("kms:Decrypt"),
		Resources: &[]*string{s.Key.KeyArn()},
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{
				"kms:ViaService":                  secretsManagerService(),
				"kms:EncryptionContext:SecretARN": s.CRL.SecretArn(),
			},
		},
	}))
}

// secretsManagerService is the kms:ViaService value of Secrets Manager in
// the stack's region.
func secretsManagerService() *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("secretsmanager."), awscdk.Aws_REGION(), jsii.String(".amazonaws.com")})
}

// grantDecrypt lets grantee decrypt the certificate secrets through Secrets
// Manager only. Grants on an imported key cannot reach its key policy, and
// the secret's own grant only names the key in a policy of the key's
// (kms:ViaService), so the identity side is written here.
func (s *importedSecrets) grantDecrypt(grantee awsiam.IGrantable) {
	grantee.GrantPrincipal().AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DecryptCertificateSecrets"),
		Actions:   jsii.Strings("kms:Decrypt"),
		Resources: &[]*string{s.Key.KeyArn()},
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{
				"kms:ViaService": secretsManagerService(),
			},
		},
	}))
}
