// Command certgen creates the project CA and the agents' certificates,
// prints a certificate's x5t#S256 thumbprint, and publishes certificates to
// Secrets Manager. See docs/configuration.md, Certificates.
//
//	certgen [--certs-dir ./certs] [--force] [--force-ca] [--days 365] [--key-type ecdsa|rsa] [--agents a b ...]
//	certgen thumbprint FILE
//	certgen publish [--certs-dir ./certs] [--prefix ca-a2a/] [--agents a b ...]
//
// Exit status: 0 done, 1 runtime failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

// run executes one certgen command line and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "thumbprint":
		err = thumbprintCmd(args[1:], stdout)
	case len(args) > 0 && args[0] == "publish":
		err = publishCmd(ctx, args[1:], stdout)
	default:
		err = generateCmd(args, stdout)
	}
	var usage usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "certgen: %v\n(certgen -h for usage)\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "certgen: %v\n", err)
		return 1
	}
}
