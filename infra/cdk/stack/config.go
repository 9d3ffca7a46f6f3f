// Package stack defines the ca-a2a deployment: the secrets stack that holds
// the certificate material slots and the application stack with the network,
// service discovery, agents, Keycloak, documents bucket, queue and Lambda.
package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// Names shared with the rest of the system (docs/contract.md, Identities;
// docs/configuration.md, Agents, Lambda and Certificates).
const (
	// Namespace is the Cloud Map private DNS namespace; each service is
	// <name>.ca-a2a.local, the name its certificate carries.
	Namespace = "ca-a2a.local"
	// SecretPrefix is where certgen publish writes the certificate material.
	SecretPrefix = "ca-a2a/"
	// CASecretName holds the project CA bundle: the current CA, and during a
	// rotation the next one too.
	CASecretName = SecretPrefix + "ca-cert"
	// CRLSecretName holds the project CA's certificate revocation list(s).
	// Every agent fetches it itself (MTLS_CRL_SECRET_ID), at start and again
	// every MTLS_CRL_REFRESH, so a revocation needs no redeploy.
	CRLSecretName = SecretPrefix + "crl"
	// KeycloakPort is Keycloak's HTTPS port.
	KeycloakPort = 8443
	// Issuer is the realm URL every agent and the Lambda trust.
	Issuer = "https://keycloak." + Namespace + ":8443/realms/ca-a2a"
	// Audience is the audience every access token must carry.
	Audience = "ca-a2a-agents"
	// AgentUID is distroless's nonroot user, which the agents run as.
	AgentUID = "65532"

	// RDSCABundleFile is the Amazon RDS CA bundle in the repository; the
	// agent image ships it at AgentRDSCABundle, the Keycloak image at
	// KeycloakRDSCABundle (see infra/rds/README.md).
	RDSCABundleFile     = "infra/rds/global-bundle.pem"
	AgentRDSCABundle    = "/etc/ca-a2a/rds-global-bundle.pem"
	KeycloakRDSCABundle = "/opt/keycloak/conf/rds-global-bundle.pem"

	// MetricsNamespace is the CloudWatch namespace of the agents' and the
	// Lambda's Embedded Metric Format lines; AgentDimension names the emitter
	// ("lambda" for the Lambda).
	MetricsNamespace = "CaA2a"
	AgentDimension   = "Agent"
	LambdaAgentName  = "lambda"

	// ClusterName is the ECS cluster; services are ca-a2a-<name> in it.
	ClusterName = "ca-a2a"

	// SecretsStackID and AppStackID are the construct ids (and CloudFormation
	// stack names) of the two stacks.
	SecretsStackID = "CaA2aSecrets"
	AppStackID     = "CaA2a"
)

// Agent is one of the four agent services.
type Agent struct {
	Name string
	Port int
}

// Agents lists the agents in the roster's order (docs/contract.md,
// Identities) with their ports.
var Agents = []Agent{
	{"orchestrator", 8001},
	{"extractor", 8002},
	{"validator", 8003},
	{"archivist", 8004},
}

// Principals are the names that get a certificate and key secret: the four
// agents, the Lambda and Keycloak (certgen's default --agents).
var Principals = []string{"orchestrator", "extractor", "validator", "archivist", "lambda", "keycloak"}

// CertSecretName and KeySecretName are the Secrets Manager names certgen
// publish writes for principal name.
func CertSecretName(name string) string { return SecretPrefix + name + "-cert" }

// KeySecretName is the secret that holds name's private key.
func KeySecretName(name string) string { return SecretPrefix + name + "-key" }

// URL is the https URL of an agent inside the namespace.
func (a Agent) URL() string { return fmt.Sprintf("https://%s.%s:%d", a.Name, Namespace, a.Port) }

// Config is what the app reads from CDK context (cdk.json or -c key=value).
type Config struct {
	// RepoRoot is the root of the ca-a2a module: the Docker build context and
	// the module the Lambda's bootstrap is built from.
	RepoRoot string
	// NatGateways is 0 by default: the tasks and the Lambda reach AWS through
	// VPC endpoints only and the VPC has no internet gateway.
	NatGateways int
	// SecretsExtension adds the AWS Parameters and Secrets Lambda Extension
	// layer and sets PARAMETERS_SECRETS_EXTENSION_HTTP_PORT.
	SecretsExtension bool
	// DBMultiAZ makes Keycloak's PostgreSQL instance Multi-AZ.
	DBMultiAZ bool
	// Account and Region pin the stacks' environment; empty means
	// environment-agnostic, which is what synth and the tests use.
	Account, Region string
	// AlarmEmail, when set, subscribes this address to the alarm topic.
	AlarmEmail string
	// AuthRefusalsThreshold is how many auth-chain refusals of any reason
	// one agent may answer in five minutes before its alarm fires.
	AuthRefusalsThreshold int
	// InternalErrorsThreshold is how many -32603 answers one agent may give
	// in five minutes before its alarm fires.
	InternalErrorsThreshold int
}

// Defaults of the alarm thresholds (context authRefusalsThreshold and
// internalErrorsThreshold).
const (
	DefaultAuthRefusalsThreshold   = 10
	DefaultInternalErrorsThreshold = 1
)

// emailRE accepts one plain address (what an SNS e-mail subscription takes);
// it is a sanity check against typos and lists, not RFC 5322.
var emailRE = regexp.MustCompile(`^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$`)

// Env returns the stacks' environment, nil when environment-agnostic.
func (c Config) Env() *awscdk.Environment {
	if c.Account == "" && c.Region == "" {
		return nil
	}
	env := &awscdk.Environment{}
	if c.Account != "" {
		env.Account = jsii.String(c.Account)
	}
	if c.Region != "" {
		env.Region = jsii.String(c.Region)
	}
	return env
}

// ConfigFromContext reads the context keys natGateways, secretsExtension,
// dbMultiAz, account, region, alarmEmail, authRefusalsThreshold and
// internalErrorsThreshold. Values from cdk.json arrive as JSON types, values
// from -c as strings; both are accepted.
func ConfigFromContext(app awscdk.App, repoRoot string) (Config, error) {
	cfg := Config{
		RepoRoot:                repoRoot,
		AuthRefusalsThreshold:   DefaultAuthRefusalsThreshold,
		InternalErrorsThreshold: DefaultInternalErrorsThreshold,
	}
	var errs []error
	get := func(key string) (string, bool) {
		v := app.Node().TryGetContext(jsii.String(key))
		if v == nil {
			return "", false
		}
		switch t := v.(type) {
		case string:
			return t, true
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(t), true
		default:
			return fmt.Sprint(t), true
		}
	}
	if v, ok := get("natGateways"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 2 {
			errs = append(errs, fmt.Errorf("stack: context natGateways must be 0, 1 or 2, got %q", v))
		}
		cfg.NatGateways = n
	}
	for key, dst := range map[string]*bool{"secretsExtension": &cfg.SecretsExtension, "dbMultiAz": &cfg.DBMultiAZ} {
		if v, ok := get(key); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("stack: context %s must be true or false, got %q", key, v))
			}
			*dst = b
		}
	}
	for key, dst := range map[string]*int{"authRefusalsThreshold": &cfg.AuthRefusalsThreshold, "internalErrorsThreshold": &cfg.InternalErrorsThreshold} {
		if v, ok := get(key); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1_000_000 {
				errs = append(errs, fmt.Errorf("stack: context %s must be a whole number from 1 to 1000000, got %q", key, v))
			}
			*dst = n
		}
	}
	if v, ok := get("alarmEmail"); ok && v != "" {
		if !emailRE.MatchString(v) {
			errs = append(errs, fmt.Errorf("stack: context alarmEmail must be one e-mail address, got %q", v))
		}
		cfg.AlarmEmail = v
	}
	cfg.Account, _ = get("account")
	cfg.Region, _ = get("region")
	if err := CheckRepoRoot(repoRoot); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// CheckRepoRoot fails with a clear message when dir is not the ca-a2a module
// root or lacks what the stack builds from it.
func CheckRepoRoot(dir string) error {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/ca-a2a/ca-a2a\n") {
		return fmt.Errorf("stack: %s is not the ca-a2a module root (no go.mod for github.com/ca-a2a/ca-a2a)", dir)
	}
	for _, p := range []string{"cmd/lambda", "Dockerfile", "infra/keycloak/realm-ca-a2a.json", "infra/cdk/keycloak/Dockerfile", RDSCABundleFile} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return fmt.Errorf("stack: %s is missing from the repository (%v); the stack builds the Lambda from ./cmd/lambda, the agent image from ./Dockerfile and the Keycloak image from infra/cdk/keycloak with the realm file, both images with the RDS CA bundle", p, err)
		}
	}
	return nil
}

// FindRepoRoot walks up from dir to the directory whose go.mod declares
// github.com/ca-a2a/ca-a2a.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if mod, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(mod), "module github.com/ca-a2a/ca-a2a\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("stack: no go.mod for github.com/ca-a2a/ca-a2a above %s", dir)
		}
	}
}
