// Command cdk is the ca-a2a CDK app: `cdk synth` and `cdk deploy` run it
// from infra/cdk (cdk.json).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	root, err := stack.FindRepoRoot(".")
	if err == nil {
		var cfg stack.Config
		cfg, err = stack.ConfigFromContext(app, root)
		if err == nil {
			stack.Build(app, cfg)
			app.Synth(nil)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "cdk:", err)
	os.Exit(1)
}
