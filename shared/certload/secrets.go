package certload

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Errors of the Secrets Manager source.
var (
	ErrSecretMissing = errors.New("certload: secret not found")
	ErrSecretBinary  = errors.New("certload: secret holds binary data, want a PEM string")
	ErrSecretPartial = errors.New("certload: Secrets Manager returned a partial answer")
)

// SecretIDs names the three secrets that hold the PEM certificate, key and
// CA bundle (the Lambda's defaults, docs/configuration.md: ca-a2a/lambda-cert,
// ca-a2a/lambda-key, ca-a2a/ca-cert).
type SecretIDs struct {
	Cert, Key, CA string
}

// BatchGetSecretValueAPI is the one Secrets Manager call this package makes;
// *secretsmanager.Client satisfies it.
type BatchGetSecretValueAPI interface {
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

// FetchSecrets reads the three secret strings in one BatchGetSecretValue
// call and returns them in the order cert, key, CA. A missing secret, a
// binary secret or an answer that lacks one of them is an error naming the
// secret id.
func FetchSecrets(ctx context.Context, api BatchGetSecretValueAPI, ids SecretIDs) (cert, key, ca []byte, err error) {
	want := []string{ids.Cert, ids.Key, ids.CA}
	for _, id := range want {
		if id == "" {
			return nil, nil, nil, errors.New("certload: empty secret id")
		}
	}
	out, err := api.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: want})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certload: BatchGetSecretValue: %w", err)
	}
	if len(out.Errors) > 0 {
		// Report the first failure; each names its secret id, never a value.
		e := out.Errors[0]
		id := aws.ToString(e.SecretId)
		if aws.ToString(e.ErrorCode) == "ResourceNotFoundException" {
			return nil, nil, nil, fmt.Errorf("%w: %s", ErrSecretMissing, id)
		}
		return nil, nil, nil, fmt.Errorf("certload: secret %s: %s", id, aws.ToString(e.ErrorCode))
	}
	got := make(map[string][]byte, len(out.SecretValues))
	for _, v := range out.SecretValues {
		if v.SecretString == nil {
			return nil, nil, nil, fmt.Errorf("%w: %s", ErrSecretBinary, firstNonEmpty(aws.ToString(v.Name), aws.ToString(v.ARN)))
		}
		// The answer names secrets by name and ARN; the request may have used
		// either, so index by both.
		got[aws.ToString(v.Name)] = []byte(*v.SecretString)
		got[aws.ToString(v.ARN)] = []byte(*v.SecretString)
	}
	vals := make([][]byte, len(want))
	for i, id := range want {
		v, ok := got[id]
		if !ok {
			return nil, nil, nil, fmt.Errorf("%w: %s missing", ErrSecretPartial, id)
		}
		vals[i] = v
	}
	return vals[0], vals[1], vals[2], nil
}

// GetSecretValueAPI is the Secrets Manager call that reads the CRL secret
// (MTLS_CRL_SECRET_ID); *secretsmanager.Client satisfies it.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// FetchSecretString reads the current version of one secret's string. A
// missing secret (deleted, or never created) is ErrSecretMissing, a binary
// one ErrSecretBinary; messages name the secret id, never a value.
func FetchSecretString(ctx context.Context, api GetSecretValueAPI, id string) ([]byte, error) {
	if id == "" {
		return nil, errors.New("certload: empty secret id")
	}
	out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s", ErrSecretMissing, id)
		}
		return nil, fmt.Errorf("certload: GetSecretValue %s: %w", id, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("%w: %s", ErrSecretBinary, id)
	}
	return []byte(*out.SecretString), nil
}

// defaultSecretsManager is a client from the default AWS configuration: the
// region, credentials (in ECS, the task role's) and AWS_ENDPOINT_URL of the
// environment.
func defaultSecretsManager(ctx context.Context) (*secretsmanager.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("certload: AWS configuration: %w", err)
	}
	return secretsmanager.NewFromConfig(cfg), nil
}

// FromSecretsManager fetches the three secrets in one call and validates
// them. The bundle does not rotate: a Lambda or task picks up a new secret
// version when it next starts.
func FromSecretsManager(ctx context.Context, api BatchGetSecretValueAPI, ids SecretIDs, opts Options) (*Static, error) {
	cert, key, ca, err := FetchSecrets(ctx, api, ids)
	if err != nil {
		return nil, err
	}
	return FromPEM(cert, key, ca, Origin{Cert: "secret " + ids.Cert, Key: "secret " + ids.Key, CA: "secret " + ids.CA}, opts)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
