package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// maxDays caps --days at the CA's own lifetime.
const maxDays = 3650

func newGenerateFlags(o *certgen.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.BoolVar(&o.Force, "force", false, "re-issue the selected leaf certificates with the existing CA")
	fs.BoolVar(&o.ForceCA, "force-ca", false, "create a new CA and re-issue every selected leaf")
	fs.IntVar(&o.Days, "days", 365, "validity of leaf certificates in days")
	fs.StringVar(&o.KeyType, "key-type", "ecdsa", "ecdsa (P-256) or rsa (RSA-2048 leaves, RSA-3072 for a new CA)")
	return fs
}

// parseGenerate turns the command line of the default command into options.
func parseGenerate(args []string) (certgen.Options, *flag.FlagSet, error) {
	var o certgen.Options
	fs := newGenerateFlags(&o)
	agents, err := parseFlags(fs, args)
	if err != nil {
		return o, fs, err
	}
	o.Agents = agents.orDefault()
	if o.KeyType != "ecdsa" && o.KeyType != "rsa" {
		return o, fs, usageError{fmt.Sprintf("--key-type must be ecdsa or rsa, not %q", o.KeyType)}
	}
	if o.Days < 1 || o.Days > maxDays {
		return o, fs, usageError{fmt.Sprintf("--days must be between 1 and %d", maxDays)}
	}
	if o.Dir == "" {
		return o, fs, usageError{"--certs-dir must not be empty"}
	}
	return o, fs, nil
}

func generateCmd(args []string, stdout io.Writer) error {
	o, fs, err := parseGenerate(args)
	if errors.Is(err, errHelp) {
		printUsage(stdout, fs)
	}
	if err != nil {
		return err
	}
	o.Now = time.Now()
	if err := checkKeptCA(o); err != nil {
		return err
	}
	o.Out = lineWriter(stdout)
	// certgen.Generate reports what it creates or re-issues but is silent
	// about a CA it reuses; say "kept" for it before the first leaf line,
	// which Generate only writes once the CA has loaded and matched its key.
	if caKept(o) {
		caCert, _ := certgen.CAPaths(o.Dir)
		out, said := o.Out, false
		o.Out = func(format string, a ...any) {
			if !said {
				said = true
				out("kept      %s", caCert)
			}
			out(format, a...)
		}
	}
	if err := certgen.Generate(o); err != nil {
		return err
	}
	return checkLeaves(o)
}

// caKept reports whether Generate will reuse the CA in o.Dir.
func caKept(o certgen.Options) bool {
	if o.ForceCA {
		return false
	}
	cert, key := certgen.CAPaths(o.Dir)
	_, errC := os.Stat(cert)
	_, errK := os.Stat(key)
	return errC == nil && errK == nil
}

// lineWriter prints one line per call to w.
func lineWriter(w io.Writer) func(string, ...any) {
	return func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
}
