package stack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Lambda settings (docs/configuration.md, Lambda).
const (
	FanoutConcurrency     = 8
	SecretsExtensionPort  = 2773
	sqsBatchSize          = 10
	sqsBatchWindowSeconds = 5
	sqsMaxConcurrency     = 5
)

// LambdaEnvironment is the Lambda's environment, without the variables the
// Parameters and Secrets extension adds.
func LambdaEnvironment() map[string]*string {
	return map[string]*string{
		"CERT_SECRET_ID": jsii.String(CertSecretName("lambda")),
		"KEY_SECRET_ID":  jsii.String(KeySecretName("lambda")),
		"CA_SECRET_ID":   jsii.String(CASecretName),
		// A name, not a value: the function fetches the CRL itself at init
		// and every MTLS_CRL_REFRESH while it runs.
		"MTLS_CRL_SECRET_ID": jsii.String(CRLSecretName),
		"OIDC_ISSUER":        jsii.String(Issuer),
		"OIDC_TOKEN_URL":     jsii.String(Issuer + "/protocol/openid-connect/token"),
		"OIDC_SERVER_NAME":   jsii.String("keycloak." + Namespace),
		"ORCHESTRATOR_URL":   jsii.String(Agents[0].URL()),
		"FANOUT_CONCURRENCY": jsii.String(strconv.Itoa(FanoutConcurrency)),
	}
}

// lambda defines the documents function in the private subnets, fed by the
// queue, with a role that reads only its own three secrets, the CRL and the
// queue.
func (a *Application) lambda() {
	st := a.Stack
	logs := a.logGroup("FunctionLogs")
	role := awsiam.NewRole(st, jsii.String("FunctionRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("ca-a2a documents Lambda"),
	})
	logs.GrantWrite(role)
	// Lambda manages the function's ENIs with the function's role; these EC2
	// actions have no resource-level scoping for this use.
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("VpcNetworkInterfaces"),
		Actions: jsii.Strings(
			"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
			"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
		),
		Resources: jsii.Strings("*"),
	}))
	for _, s := range []interface {
		GrantRead(awsiam.IGrantable, *[]*string) awsiam.Grant
	}{
		a.secrets.Cert["lambda"], a.secrets.PrivateKey["lambda"], a.secrets.CA, a.secrets.CRL,
	} {
		s.GrantRead(role, nil)
	}
	a.secrets.grantDecrypt(role)
	if !a.cfg.SecretsExtension {
		// One BatchGetSecretValue at init; the action takes no resource, the
		// GetSecretValue grants above decide which secrets it returns.
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("BatchGetOwnSecrets"),
			Actions:   jsii.Strings("secretsmanager:BatchGetSecretValue"),
			Resources: jsii.Strings("*"),
		}))
	}

	env := LambdaEnvironment()
	props := &awslambda.FunctionProps{
		Description:    jsii.String("ca-a2a: S3/SQS document events -> orchestrator process_document over mTLS with a certificate-bound token"),
		Runtime:        awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:   awslambda.Architecture_ARM_64(),
		Handler:        jsii.String("bootstrap"),
		Code:           a.lambdaCode(),
		Role:           role,
		Vpc:            a.Vpc,
		VpcSubnets:     a.Private,
		SecurityGroups: &[]awsec2.ISecurityGroup{a.FunctionSG},
		Timeout:        awscdk.Duration_Seconds(jsii.Number(lambdaTimeoutSeconds)),
		MemorySize:     jsii.Number(256),
		Environment:    &env,
		LogGroup:       logs,
	}
	if a.cfg.SecretsExtension {
		props.ParamsAndSecrets = awslambda.ParamsAndSecretsLayerVersion_FromVersion(awslambda.ParamsAndSecretsVersions_V1_0_103, &awslambda.ParamsAndSecretsOptions{
			CacheEnabled: jsii.Bool(true),
			HttpPort:     jsii.Number(SecretsExtensionPort),
			LogLevel:     awslambda.ParamsAndSecretsLogLevel_WARN,
		})
	}
	a.Function = awslambda.NewFunction(st, jsii.String("DocumentsFunction"), props)
	// Deliveries start once the orchestrator is up, not while the first
	// deployment is still starting it (each failed batch counts towards the
	// DLQ's maxReceiveCount).
	a.Function.Node().AddDependency(a.Services[Agents[0].Name])
	a.Function.AddEventSource(awslambdaeventsources.NewSqsEventSource(a.Queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(sqsBatchSize),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(sqsBatchWindowSeconds)),
		ReportBatchItemFailures: jsii.Bool(true),
		// Each invocation fans out FANOUT_CONCURRENCY calls to the one
		// orchestrator task; this bounds the calls in flight to 5 x 8.
		MaxConcurrency: jsii.Number(sqsMaxConcurrency),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Lambda's VPC ENI actions and secretsmanager:BatchGetSecretValue take no resource ARN; " +
			"every other statement names the function's own log group, its three secrets and the queue."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
}

// lambdaCode is the bootstrap built from ./cmd/lambda of the repository
// module by go build on this machine (no Docker): linux/arm64, static,
// lambda.norpc. The Docker image is only CDK's fallback when go is missing.
func (a *Application) lambdaCode() awslambda.Code {
	root := a.cfg.RepoRoot
	if _, err := os.Stat(filepath.Join(root, "cmd", "lambda")); err != nil {
		panic(fmt.Sprintf("stack: the Lambda is built from %s, which does not exist: %v", filepath.Join(root, "cmd", "lambda"), err))
	}
	return awslambda.Code_FromAsset(jsii.String(root), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			Image: awscdk.DockerImage_FromRegistry(jsii.String("public.ecr.aws/docker/library/golang:1.26")),
			Command: jsii.Strings("bash", "-c",
				"GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build "+goBuildFlags+" -o /asset-output/bootstrap ./cmd/lambda"),
			Local: &goBundling{root: root},
		},
	})
}

// goBuildFlags are the flags of the bootstrap build, shared by the local and
// the Docker path.
const goBuildFlags = "-trimpath -buildvcs=false -tags lambda.norpc -ldflags=-s"

// goBundling builds the bootstrap with the local Go toolchain. It uses the
// normal Go build and module caches, so a warm synth costs seconds.
type goBundling struct{ root string }

// TryBundle implements awscdk.ILocalBundling.
func (g *goBundling) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	if _, err := exec.LookPath("go"); err != nil {
		return jsii.Bool(false)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-tags", "lambda.norpc", "-ldflags=-s",
		"-o", filepath.Join(*outputDir, "bootstrap"), "./cmd/lambda")
	cmd.Dir = g.root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		panic(fmt.Sprintf("stack: building the Lambda bootstrap (go build ./cmd/lambda in %s, linux/arm64) failed: %v", g.root, err))
	}
	return jsii.Bool(true)
}

// stackSuppressions records why findings on constructs CDK adds by itself
// are accepted.
func (a *Application) stackSuppressions() {
	cdknag.NagSuppressions_AddResourceSuppressionsByPath(a.Stack,
		jsii.String("/"+AppStackID+"/Custom::VpcRestrictDefaultSGCustomResourceProvider"),
		&[]*cdknag.NagPackSuppression{
			{
				Id:        jsii.String("AwsSolutions-IAM4"),
				Reason:    jsii.String("CDK's provider that strips the default security group's rules logs with AWSLambdaBasicExecutionRole; it runs only during deployment."),
				AppliesTo: &[]interface{}{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
			},
		}, jsii.Bool(true))
}
