package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

func printf(f string, a ...any) { fmt.Printf(f+"\n", a...) }

func generateCmd(args []string) error {
	o, err := parseGenerate(args)
	if err != nil {
		return err
	}
	return certgen.Generate(o)
}

func parseGenerate(args []string) (certgen.Options, error) {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	o := certgen.Options{Now: time.Now(), Out: printf}
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.BoolVar(&o.Force, "force", false, "re-issue the selected leaf certificates with the existing CA")
	fs.BoolVar(&o.ForceCA, "force-ca", false, "create a new CA and re-issue every selected leaf")
	fs.IntVar(&o.Days, "days", 365, "validity of leaf certificates in days")
	fs.StringVar(&o.KeyType, "key-type", "ecdsa", "ecdsa (P-256) or rsa (2048)")
	var agents agentList
	if err := parseFlags(fs, &agents, args); err != nil {
		return o, err
	}
	o.Agents = agents.names
	if o.KeyType != "ecdsa" && o.KeyType != "rsa" {
		return o, usageError{fmt.Sprintf("--key-type must be ecdsa or rsa, not %q", o.KeyType)}
	}
	if o.Days < 1 || o.Days > 3650 {
		return o, usageError{"--days must be between 1 and 3650"}
	}
	return o, nil
}

func publishCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("certgen publish", flag.ContinueOnError)
	dir := fs.String("certs-dir", "./certs", "directory of the CA and agent certificates")
	prefix := fs.String("prefix", "ca-a2a/", "secret name prefix")
	var agents agentList
	if err := parseFlags(fs, &agents, args); err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	return certgen.Publish(ctx, secretsmanager.NewFromConfig(cfg), *dir, *prefix, agents.names, printf)
}
