// Package stack defines the ca-a2a deployment: the secrets stack that holds
// the certificate material slots and the application stack with the network,
// service discovery, agents, Keycloak, documents bucket, queue and Lambda.
package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// Names shared with the rest of the system (DESIGN sections 3, 4 and 7).
const (
	// Namespace is the Cloud Map private DNS namespace; each service is
	// <name>.ca-a2a.local, the name its certificate carries.
	Namespace = "ca-a2a.local"
	// SecretPrefix is where certgen publish writes the certificate material.
	SecretPrefix = "ca-a2a/"
	// CASecretName holds the project CA certificate.
	CASecretName = SecretPrefix + "ca-cert"
	// KeycloakPort is Keycloak's HTTPS port.
	KeycloakPort = 8443
	// Issuer is the realm URL every agent and the Lambda trust.
	Issuer = "https://keycloak." + Namespace + ":8443/realms/ca-a2a"
	// Audience is the audience every access token must carry.
	Audience = "ca-a2a-agents"
	// ArchiveMount is where the archivist's EFS volume is mounted.
	ArchiveMount = "/mnt/archive"
	// AgentUID is distroless's nonroot user, which owns the archive volume.
	AgentUID = "65532"

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

// Agents lists the agents in DESIGN order with their ports.
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
}

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
// dbMultiAz, account and region. Values from cdk.json arrive as JSON types,
// values from -c as strings; both are accepted.
func ConfigFromContext(app awscdk.App, repoRoot string) (Config, error) {
	cfg := Config{RepoRoot: repoRoot}
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
	for _, p := range []string{"cmd/lambda", "Dockerfile", "infra/keycloak/realm-ca-a2a.json", "infra/cdk/keycloak/Dockerfile"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return fmt.Errorf("stack: %s is missing from the repository (%v); the stack builds the Lambda from ./cmd/lambda, the agent image from ./Dockerfile and the Keycloak image from infra/cdk/keycloak with the realm file", p, err)
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
