package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// rotateCmd creates the next CA beside the current one and writes the
// bundle of both.
func rotateCmd(args []string, stdout io.Writer) error {
	o := certgen.RotateOptions{Out: lineWriter(stdout)}
	fs := flag.NewFlagSet("certgen rotate-ca", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.StringVar(&o.KeyType, "key-type", "", "ecdsa (P-256) or rsa (RSA-3072) for the next CA (default: the current CA's kind)")
	if err := parseCommand(fs, args, stdout); err != nil {
		return err
	}
	if o.KeyType != "" && o.KeyType != "ecdsa" && o.KeyType != "rsa" {
		return usageError{fmt.Sprintf("--key-type must be ecdsa or rsa, not %q", o.KeyType)}
	}
	if o.Dir == "" {
		return usageError{"--certs-dir must not be empty"}
	}
	o.Now = time.Now()
	return certgen.RotateCA(o)
}

// retireCmd makes the next CA the current one.
func retireCmd(args []string, stdout io.Writer) error {
	o := certgen.RetireOptions{Out: lineWriter(stdout)}
	fs := flag.NewFlagSet("certgen retire-ca", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.BoolVar(&o.Force, "force", false, "retire even though leaves under agents/ are still issued by the current CA")
	if err := parseCommand(fs, args, stdout); err != nil {
		return err
	}
	if o.Dir == "" {
		return usageError{"--certs-dir must not be empty"}
	}
	o.Now = time.Now()
	return certgen.RetireCA(o)
}

// parseCommand parses the flags of a subcommand that takes no arguments,
// printing the usage for -h.
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
