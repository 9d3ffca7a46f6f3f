package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// publishCmd writes the CRL (when there is one), the CA bundle (never a CA
// key) and the selected agents' certificates and keys to Secrets Manager,
// configured the usual SDK way (AWS_REGION, AWS_ENDPOINT_URL, profiles,
// roles).
func publishCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("certgen publish", flag.ContinueOnError)
	dir := fs.String("certs-dir", "./certs", "directory of the CA and agent certificates")
	prefix := fs.String("prefix", "ca-a2a/", "secret name prefix")
	agents, err := parseFlags(fs, args)
	if errors.Is(err, errHelp) {
		printUsage(stdout, fs)
	}
	if err != nil {
		return err
	}
	names := agents.orDefault()
	if err := checkFiles(*dir, names); err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	return certgen.Publish(ctx, secretsmanager.NewFromConfig(cfg), *dir, *prefix, names, lineWriter(stdout))
}

// checkFiles fails before any secret is written when a file to publish is
// missing or unreadable, so a typo in --agents does not publish half a set.
func checkFiles(dir string, agents []string) error {
	paths := []string{certgen.PublishedCA(dir)}
	for _, a := range agents {
		c, k := certgen.LeafPaths(dir, a)
		paths = append(paths, c, k)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("nothing published: %w (run certgen first)", err)
		}
		f.Close()
	}
	return nil
}
