// Command certgen creates the project CA and the agents' certificates,
// rotates the CA with an overlap, revokes certificates in a CRL, prints a
// certificate's x5t#S256 thumbprint, and publishes the material to Secrets
// Manager (docs/configuration.md, Certificates). The usage text (certgen -h)
// lists the commands; the logic and the file layout are in internal/certgen.
//
// Exit status: 0 done, 1 runtime failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
	case len(args) > 0 && args[0] == "rotate-ca":
		err = rotateCmd(args[1:], stdout)
	case len(args) > 0 && args[0] == "retire-ca":
		err = retireCmd(args[1:], stdout)
	case len(args) > 0 && args[0] == "revoke":
		err = revokeCmd(args[1:], stdout)
	case len(args) > 0 && args[0] == "crl":
		err = crlCmd(args[1:], stdout)
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
		// internal/certgen's sentinels already carry the prefix.
		fmt.Fprintf(stderr, "certgen: %s\n", strings.TrimPrefix(err.Error(), "certgen: "))
		return 1
	}
}
