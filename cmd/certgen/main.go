// Command certgen creates the project CA and the agents' certificates,
// prints a certificate's x5t#S256 thumbprint, and publishes certificates to
// Secrets Manager. See DESIGN section 3.
//
//	certgen [--certs-dir ./certs] [--force] [--force-ca] [--days 365] [--key-type ecdsa|rsa] [--agents a b ...]
//	certgen thumbprint FILE
//	certgen publish [--certs-dir ./certs] [--prefix ca-a2a/] [--agents a b ...]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() { os.Exit(run(context.Background(), os.Args[1:])) }

func run(ctx context.Context, args []string) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "thumbprint":
		err = thumbprintCmd(args[1:])
	case len(args) > 0 && args[0] == "publish":
		err = publishCmd(ctx, args[1:])
	default:
		err = generateCmd(args)
	}
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "certgen:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "certgen:", err)
		return 1
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }
