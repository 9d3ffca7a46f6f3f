package certgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Publish writes each agent's certificate and key, and the CA certificate
// (never its key), as PEM secret strings.
func Publish(ctx context.Context, sm *secretsmanager.Client, dir, prefix string, agents []string, out func(string, ...any)) error {
	type item struct{ name, path string }
	caCert, _ := CAPaths(dir)
	items := []item{{prefix + "ca-cert", caCert}}
	for _, a := range agents {
		c, k := LeafPaths(dir, a)
		items = append(items, item{prefix + a + "-cert", c}, item{prefix + a + "-key", k})
	}
	for _, it := range items {
		data, err := os.ReadFile(it.path)
		if err != nil {
			return fmt.Errorf("%s: %w (run certgen first)", filepath.Clean(it.path), err)
		}
		version, err := putSecret(ctx, sm, it.name, string(data))
		if err != nil {
			return fmt.Errorf("secret %s: %w", it.name, err)
		}
		out("published %s (version %s)", it.name, version)
	}
	return nil
}

func putSecret(ctx context.Context, sm *secretsmanager.Client, name, value string) (string, error) {
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(value),
		Description:  aws.String("ca-a2a PEM, written by certgen publish"),
	})
	if err == nil {
		return aws.ToString(created.VersionId), nil
	}
	var exists *types.ResourceExistsException
	if !errors.As(err, &exists) {
		return "", err
	}
	put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		return "", err
	}
	return aws.ToString(put.VersionId), nil
}
