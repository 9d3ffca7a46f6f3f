// Command lambda is the Lambda function's bootstrap (runtime
// provided.al2023): it initialises once per execution environment and
// handles S3 and SQS events (docs/architecture.md). Build with
// -tags lambda.norpc.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/ca-a2a/ca-a2a/lambda"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := lambda.ConfigFromEnv(os.Getenv)
	if err != nil {
		fail(log, err)
	}
	rt, err := lambda.New(context.Background(), cfg, lambda.Deps{Log: log})
	if err != nil {
		fail(log, err)
	}
	awslambda.Start(rt.Handler.Invoke)
}

// fail ends the init phase loudly: Lambda reports an init error and never
// routes an event to a half-configured function.
func fail(log *slog.Logger, err error) {
	log.Error("init failed", "error", err)
	fmt.Fprintln(os.Stderr, "lambda: init failed:", err)
	os.Exit(1)
}
