package certload_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// countingSM counts the Secrets Manager calls the loader makes.
type countingSM struct {
	*secretsmanager.Client
	calls int
}

func (c *countingSM) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	c.calls++
	return c.Client.BatchGetSecretValue(ctx, in, opts...)
}

func TestFromSecretsManager(t *testing.T) {
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := &countingSM{Client: secretsmanager.NewFromConfig(cfg)}
	ca := pki.NewCA(t, "CA")
	lambda := ca.Issue(t, "lambda")
	put := func(name string, value []byte) {
		t.Helper()
		_, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(value))})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("ca-a2a/lambda-cert", lambda.CertPEM)
	put("ca-a2a/lambda-key", lambda.KeyPEM)
	put("ca-a2a/ca-cert", ca.PEM)
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("ca-a2a/binary"), SecretBinary: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	put("ca-a2a/other-key", ca.Issue(t, "extractor").KeyPEM)

	ids := certload.SecretIDs{Cert: "ca-a2a/lambda-cert", Key: "ca-a2a/lambda-key", CA: "ca-a2a/ca-cert"}
	src, err := certload.FromSecretsManager(t.Context(), sm, ids, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	if !src.Bundle().Leaf().Equal(lambda.Cert) || sm.calls != 1 {
		t.Fatalf("wrong bundle or %d calls (want exactly 1)", sm.calls)
	}

	tests := []struct {
		name string
		ids  certload.SecretIDs
		want error
	}{
		{"missing secret", certload.SecretIDs{Cert: "ca-a2a/lambda-cert", Key: "ca-a2a/nope", CA: "ca-a2a/ca-cert"}, certload.ErrSecretMissing},
		{"binary secret", certload.SecretIDs{Cert: "ca-a2a/lambda-cert", Key: "ca-a2a/binary", CA: "ca-a2a/ca-cert"}, certload.ErrSecretBinary},
		{"key of another agent", certload.SecretIDs{Cert: "ca-a2a/lambda-cert", Key: "ca-a2a/other-key", CA: "ca-a2a/ca-cert"}, certload.ErrKeyMismatch},
	}
	for _, tc := range tests {
		_, err := certload.FromSecretsManager(t.Context(), sm, tc.ids, certload.Options{Usage: certload.UsageClient})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// partialSM answers without one of the secrets asked for.
type partialSM struct {
	out *secretsmanager.BatchGetSecretValueOutput
}

func (p partialSM) BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	return p.out, nil
}

func TestPartialAnswer(t *testing.T) {
	ids := certload.SecretIDs{Cert: "a", Key: "b", CA: "c"}
	_, _, _, err := certload.FetchSecrets(t.Context(), partialSM{out: &secretsmanager.BatchGetSecretValueOutput{}}, ids)
	if !errors.Is(err, certload.ErrSecretPartial) {
		t.Fatalf("err = %v", err)
	}
}
