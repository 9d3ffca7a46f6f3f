package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// errHelp reports that -h or --help printed the usage: exit status 0.
var errHelp = errors.New("help requested")

// agentName is one DNS label in lower case: the name becomes
// <name>.ca-a2a.local in the SAN and a directory under agents/, so no dots,
// slashes, upper case, or hyphen at either end.
var agentName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// agentList is the value of --agents: one or more names, given as separate
// words up to the next flag ("--agents a b"), as a comma list
// ("--agents a,b", "--agents=a,b"), or both. Repeating --agents adds names.
type agentList struct {
	names []string
	set   bool
}

func (a *agentList) String() string { return strings.Join(a.names, ",") }

func (a *agentList) Set(v string) error {
	a.set = true
	for _, n := range strings.Split(v, ",") {
		if !agentName.MatchString(n) {
			return fmt.Errorf("invalid agent name %q: want 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'", n)
		}
		if !slices.Contains(a.names, n) {
			a.names = append(a.names, n)
		}
	}
	return nil
}

// orDefault returns the names given, or certgen's default agents.
func (a *agentList) orDefault() []string {
	if !a.set {
		return slices.Clone(certgen.DefaultAgents)
	}
	return a.names
}

// parseFlags parses args with fs plus an --agents flag that takes every word
// after it up to the next flag. The flag package stops at the first
// non-flag word, so --agents is taken out before fs sees the rest. Flags
// that take a value keep it, even when it looks like "--agents".
func parseFlags(fs *flag.FlagSet, args []string) (*agentList, error) {
	agents := &agentList{}
	fs.Var(agents, "agents", "agent names, as separate words or a comma list (default "+strings.Join(certgen.DefaultAgents, " ")+")")
	fs.SetOutput(io.Discard)

	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" || !strings.HasPrefix(arg, "-") || arg == "-" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if name != "agents" {
			rest = append(rest, arg)
			if f := fs.Lookup(name); f != nil && !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		if hasValue {
			if err := agents.Set(value); err != nil {
				return nil, usageError{err.Error()}
			}
			continue
		}
		j := i + 1
		for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
			if err := agents.Set(args[j]); err != nil {
				return nil, usageError{err.Error()}
			}
		}
		if j == i+1 {
			return nil, usageError{"--agents needs at least one name"}
		}
		i = j - 1
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return agents, nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printUsage writes the synopsis and fs's flags to w.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, synopsis)
	fmt.Fprintf(w, "\nflags of %q:\n", fs.Name())
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

const synopsis = `usage:
  certgen [--certs-dir ./certs] [--force] [--force-ca] [--days 365] [--key-type ecdsa|rsa] [--agents name ...]
  certgen rotate-ca [--certs-dir ./certs] [--key-type ecdsa|rsa]
  certgen retire-ca [--certs-dir ./certs] [--force]
  certgen revoke [--certs-dir ./certs] [--reason keyCompromise] [--crl-days 30] NAME | --serial HEX
  certgen crl [--certs-dir ./certs] [--crl-days 30]
  certgen thumbprint FILE
  certgen publish [--certs-dir ./certs] [--prefix ca-a2a/] [--agents name ...]

Agents trust ca/ca-bundle.pem (MTLS_CA_CERT_PATH): the current CA, plus the
next one during a rotation. Rotating the CA, one rollout per step:
  1. rotate-ca                   creates ca/next/ and the bundle of both CAs
  2. --force [--agents ...]      re-issues leaves from the next CA
  3. retire-ca                   the next CA becomes the current one
revoke adds a certificate to the CRL of its CA in ca/crl.pem (one CRL per
CA); crl re-signs that file before its nextUpdate. publish writes
<prefix>crl, <prefix>ca-cert (the bundle) and each agent's certificate and key.
`
