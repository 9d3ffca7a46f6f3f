package certgen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// PublishedCA returns the file Publish writes as <prefix>ca-cert: the
// bundle, or the CA certificate in a directory made before bundles existed.
func PublishedCA(dir string) string {
	if _, err := os.Stat(BundlePath(dir)); err == nil {
		return BundlePath(dir)
	}
	caCert, _ := CAPaths(dir)
	return caCert
}

// Publish writes, as PEM secret strings, the CRL (<prefix>crl, when
// ca/crl.pem exists), the CA bundle (<prefix>ca-cert; never a CA key), and
// each agent's certificate and key. The CRL must verify against the bundle,
// as agents will check it, or nothing is written. The CRL goes first: when
// a rotation is retired, a task that starts between two writes then sees
// the new CRL with the old bundle, which it accepts, rather than the old
// CRL (holding the retired CA's list) with the new bundle, which it would
// refuse.
func Publish(ctx context.Context, sm *secretsmanager.Client, dir, prefix string, agents []string, out func(string, ...any)) error {
	type item struct{ name, path string }
	var items []item
	bundle := PublishedCA(dir)
	crl := CRLPath(dir)
	switch _, err := os.Stat(crl); {
	case err == nil:
		if err := checkCRL(bundle, crl); err != nil {
			return err
		}
		items = append(items, item{prefix + "crl", crl})
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	items = append(items, item{prefix + "ca-cert", bundle})
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

// checkCRL verifies the CRL file against the bundle the way an agent does.
func checkCRL(bundlePath, crlPath string) error {
	bundle, err := os.ReadFile(bundlePath)
	if err != nil {
		return err
	}
	cas, err := certload.ParseCAs(bundle, bundlePath)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(crlPath)
	if err != nil {
		return err
	}
	if _, err := certload.ParseCRLs(data, crlPath, cas); err != nil {
		return fmt.Errorf("%w: %w (agents would refuse it; nothing published)", ErrBadCRL, err)
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
