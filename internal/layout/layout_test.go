// Package layout checks the import rules of docs/architecture.md ("Rules the
// imports keep") with go list, so that a change that breaks one fails the
// tests instead of waiting for a reader to notice.
package layout

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
)

const module = "github.com/ca-a2a/ca-a2a/"

// pkg is one package of the module as go list sees it.
type pkg struct {
	path    string   // relative to the module: "shared/agentapi"
	imports []string // direct imports, module-relative where inside it
	deps    []string // every import, direct or not, likewise
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}}|{{join .Deps ","}}`, "./...")
	cmd.Dir = repo.Root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rel := func(s string) []string {
		var out []string
		for p := range strings.SplitSeq(s, ",") {
			if p != "" {
				out = append(out, strings.TrimPrefix(p, module))
			}
		}
		return out
	}
	pkgs := map[string]pkg{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("go list line %q", line)
		}
		p := pkg{path: strings.TrimPrefix(f[0], module), imports: rel(f[1]), deps: rel(f[2])}
		pkgs[p.path] = p
	}
	for _, want := range []string{"lambda", "shared/agentapi", "shared/certload", "agentsvc/agents/validator", "cmd/agent"} {
		if _, ok := pkgs[want]; !ok {
			t.Fatalf("go list did not list %s: the rules below would check nothing", want)
		}
	}
	return pkgs
}

func under(path string, prefixes ...string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// isStandard: a standard library path has no dot in its first element.
func isStandard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") && !strings.HasPrefix(path, "shared/") && !strings.HasPrefix(path, "internal/") &&
		!strings.HasPrefix(path, "agentsvc/") && !strings.HasPrefix(path, "lambda") && !strings.HasPrefix(path, "cmd/")
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	for _, p := range pkgs {
		// The Lambda and the shared packages reach the agents over the wire only.
		if under(p.path, "lambda", "shared") {
			for _, d := range p.deps {
				if under(d, "agentsvc") {
					t.Errorf("%s depends on %s: lambda/ and shared/ import nothing from agentsvc/", p.path, d)
				}
			}
		}
		// An agent offers methods; HTTP and authentication are the runtime's.
		if under(p.path, "agentsvc/agents") {
			for _, d := range p.imports {
				if d == "net/http" || under(d, "shared/binding", "shared/certload", "agentsvc/runtime/server") {
					t.Errorf("%s imports %s: an agent package knows nothing of HTTP or authentication", p.path, d)
				}
			}
		}
	}
	// The contract: the standard library and certload's authorizer type.
	for _, d := range pkgs["shared/agentapi"].imports {
		if !isStandard(d) && d != "shared/certload" {
			t.Errorf("shared/agentapi imports %s: only the standard library and shared/certload", d)
		}
	}
	// The certificate loader knows no agent names.
	if slices.Contains(pkgs["shared/certload"].deps, "shared/agentapi") {
		t.Error("shared/certload depends on shared/agentapi: the roster's naming rule is the caller's authorizer")
	}
	// Agents do not import one another (a test helper package of an agent,
	// such as extractor/pdftest, is that agent's own).
	agent := func(path string) string {
		rest, ok := strings.CutPrefix(path, "agentsvc/agents/")
		if !ok {
			return ""
		}
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	for _, p := range pkgs {
		if a := agent(p.path); a != "" {
			for _, d := range p.deps {
				if b := agent(d); b != "" && b != a {
					t.Errorf("%s depends on %s: agents reach one another over the wire only", p.path, d)
				}
			}
		}
	}
	// The agent binary serves A2A but carries no A2A client.
	for _, d := range pkgs["cmd/agent"].deps {
		if strings.HasPrefix(d, "github.com/a2aproject/a2a-go/a2aclient") {
			t.Errorf("cmd/agent depends on %s: a2a-go's client is for callers only (shared/a2acaller)", d)
		}
	}
}

func TestIsStandard(t *testing.T) {
	for path, want := range map[string]bool{"net/http": true, "crypto/x509": true, "shared/certload": false, "github.com/a/b": false, "lambda": false} {
		if isStandard(path) != want {
			t.Errorf("isStandard(%q) = %v", path, !want)
		}
	}
}
