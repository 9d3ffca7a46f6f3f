// Command cdk is the ca-a2a CDK app: `cdk synth` and `cdk deploy` run it
// from infra/cdk (cdk.json). Context keys: natGateways, secretsExtension,
// dbMultiAz, account, region, alarmEmail, authRefusalsThreshold,
// internalErrorsThreshold (see infra/README.md).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cdk:", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		return err
	}
	cfg, err := stack.ConfigFromContext(app, root)
	if err != nil {
		return err
	}
	stack.Build(app, cfg)
	app.Synth(nil)
	return nil
}
