package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

var agentName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// agentList is a flag value that takes one or more names: "--agents a b c"
// (until the next flag) or "--agents a,b,c".
type agentList struct {
	names []string
	set   bool
}

func (a *agentList) String() string { return strings.Join(a.names, ",") }

func (a *agentList) Set(v string) error {
	if !a.set {
		a.names, a.set = nil, true
	}
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !agentName.MatchString(n) {
			return fmt.Errorf("invalid agent name %q (lower-case letters, digits and '-')", n)
		}
		a.names = append(a.names, n)
	}
	return nil
}

// parseFlags parses args with fs, letting "--agents" take the words that
// follow it up to the next flag, as the seed's Python tool did.
func parseFlags(fs *flag.FlagSet, agents *agentList, args []string) error {
	fs.SetOutput(io.Discard)
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--agents" || a == "-agents" {
			j := i + 1
			for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
				if err := agents.Set(args[j]); err != nil {
					return usageError{err.Error()}
				}
			}
			if j == i+1 {
				return usageError{"--agents needs at least one name"}
			}
			i = j - 1
			continue
		}
		rest = append(rest, a)
	}
	if err := fs.Parse(rest); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if !agents.set {
		agents.names = certgen.DefaultAgents
	}
	return nil
}
