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
	// about the CAs it reuses; say "kept" for them before the first line,
	// which Generate only writes once the CAs have loaded and matched
	// their keys.
	if kept := keptCAs(o); len(kept) > 0 {
		out, said := o.Out, false
		o.Out = func(format string, a ...any) {
			if !said {
				said = true
				for _, p := range kept {
					out("kept      %s", p)
				}
			}
			out(format, a...)
		}
	}
	if err := certgen.Generate(o); err != nil {
		return err
	}
	return checkLeaves(o)
}

// keptCAs returns the certificates of the CAs Generate will reuse: the
// current one, and the next one during a rotation (leaves then come from
// it).
func keptCAs(o certgen.Options) []string {
	var kept []string
	pairs := [][2]string{}
	if !o.ForceCA {
		c, k := certgen.CAPaths(o.Dir)
		pairs = append(pairs, [2]string{c, k})
	}
	c, k := certgen.NextCAPaths(o.Dir)
	pairs = append(pairs, [2]string{c, k})
	for _, p := range pairs {
		_, errC := os.Stat(p[0])
		_, errK := os.Stat(p[1])
		if errC == nil && errK == nil {
			kept = append(kept, p[0])
		}
	}
	return kept
}

// lineWriter prints one line per call to w.
func lineWriter(w io.Writer) func(string, ...any) {
	return func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
}
