package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Secrets is the stack of certificate secrets. It is deployed before
// certgen publish fills the secrets and before the application stack starts
// tasks that read them, so a task never starts on a placeholder.
type Secrets struct {
	Stack awscdk.Stack
	// Key encrypts every certificate secret.
	Key awskms.Key
	// CA is ca-a2a/ca-cert: the CA bundle (current CA, plus the next one
	// during a rotation).
	CA awssecretsmanager.Secret
	// CRL is ca-a2a/crl: the revocation list(s) signed by the CA(s) of the
	// bundle.
	CRL awssecretsmanager.Secret
	// Cert and PrivateKey map a principal name to ca-a2a/<name>-cert and
	// ca-a2a/<name>-key.
	Cert, PrivateKey map[string]awssecretsmanager.Secret
}

// NewSecrets defines the KMS key and the secret slots. The secrets are
// created with a random placeholder (CloudFormation's GenerateSecretString):
// the template never carries certificate or key material; certgen publish
// puts the PEM values as new versions.
func NewSecrets(scope constructs.Construct, cfg Config) *Secrets {
	st := awscdk.NewStack(scope, jsii.String(SecretsStackID), &awscdk.StackProps{
		Env:         cfg.Env(),
		Description: jsii.String("ca-a2a certificate secrets (values written by certgen publish)"),
	})
	s := &Secrets{
		Stack:      st,
		Cert:       map[string]awssecretsmanager.Secret{},
		PrivateKey: map[string]awssecretsmanager.Secret{},
	}
	s.Key = awskms.NewKey(st, jsii.String("SecretsKey"), &awskms.KeyProps{
		Alias:             jsii.String("alias/ca-a2a-secrets"),
		Description:       jsii.String("ca-a2a: encrypts the certificate and key secrets"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	secret := func(id, name, desc string) awssecretsmanager.Secret {
		sec := awssecretsmanager.NewSecret(st, jsii.String(id), &awssecretsmanager.SecretProps{
			SecretName:    jsii.String(name),
			Description:   jsii.String(desc),
			EncryptionKey: s.Key,
		})
		cdknag.NagSuppressions_AddResourceSuppressions(sec, &[]*cdknag.NagPackSuppression{{
			Id: jsii.String("AwsSolutions-SMG4"),
			Reason: jsii.String("Certificate material and the CRL are rotated by re-issuing them with certgen from the offline CA and publishing a new version " +
				"(certgen publish); agents fetch the CRL again every MTLS_CRL_REFRESH, the rest reaches the services when they are redeployed " +
				"(ECS injects secrets at task start). A rotation Lambda cannot hold the CA key."),
		}}, jsii.Bool(true))
		return sec
	}
	s.CA = secret("CaCert", CASecretName, "ca-a2a project CA bundle (PEM: current CA, and the next one during a rotation), written by certgen publish")
	s.CRL = secret("Crl", CRLSecretName, "ca-a2a certificate revocation list(s) (PEM, signed by the CA), written by certgen publish")
	for _, name := range Principals {
		id := constructID(name)
		s.Cert[name] = secret(id+"Cert", CertSecretName(name), "ca-a2a "+name+" certificate (PEM), written by certgen publish")
		s.PrivateKey[name] = secret(id+"Key", KeySecretName(name), "ca-a2a "+name+" private key (PEM), written by certgen publish")
	}
	return s
}

// constructID turns a principal name into a construct id fragment
// ("orchestrator" -> "Orchestrator").
func constructID(name string) string {
	if name == "" {
		return name
	}
	return string(name[0]-'a'+'A') + name[1:]
}
