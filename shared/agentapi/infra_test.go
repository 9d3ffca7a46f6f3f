package agentapi_test

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// TestInfraRosterAgrees: the CDK app is its own Go module and keeps its
// own copy of the roster (infra/cdk/stack/config.go); this test fails when
// the copy drifts from agentapi. It reads the file's declarations, so it
// needs neither the CDK module nor its dependencies.
func TestInfraRosterAgrees(t *testing.T) {
	path := filepath.Join(repo.Root(t), "infra", "cdk", "stack", "config.go")
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]constant.Value{}
	vars := map[string]ast.Expr{}
	for _, decl := range file.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gd.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok || len(vs.Values) != len(vs.Names) {
				continue
			}
			for i, name := range vs.Names {
				if gd.Tok == token.VAR {
					vars[name.Name] = vs.Values[i]
					continue
				}
				if v := constValue(vs.Values[i], consts); v != nil {
					consts[name.Name] = v
				}
			}
		}
	}
	wantConsts := map[string]string{
		"Namespace":    agentapi.Domain,
		"Issuer":       agentapi.DefaultIssuer,
		"Audience":     agentapi.DefaultAudience,
		"KeycloakPort": "8443",
	}
	for name, want := range wantConsts {
		v, ok := consts[name]
		if !ok {
			t.Errorf("%s: constant %s not found; update this test with the infra copy", path, name)
			continue
		}
		got := v.ExactString()
		if v.Kind() == constant.String {
			got = constant.StringVal(v)
		}
		if got != want {
			t.Errorf("infra %s = %s, agentapi says %s", name, got, want)
		}
	}

	var agents []agentapi.Principal
	if lit, ok := vars["Agents"].(*ast.CompositeLit); ok {
		for _, e := range lit.Elts {
			el, ok := e.(*ast.CompositeLit)
			if !ok || len(el.Elts) != 2 {
				t.Fatalf("infra Agents: unexpected element %T", e)
			}
			agents = append(agents, agentapi.Principal{Name: stringLit(t, el.Elts[0]), Port: intLit(t, el.Elts[1])})
		}
	}
	if !slices.Equal(agents, agentapi.Agents()) {
		t.Errorf("infra Agents %v, agentapi %v", agents, agentapi.Agents())
	}
	var principals []string
	if lit, ok := vars["Principals"].(*ast.CompositeLit); ok {
		for _, e := range lit.Elts {
			principals = append(principals, stringLit(t, e))
		}
	}
	if !slices.Equal(principals, agentapi.Principals()) {
		t.Errorf("infra Principals %v, agentapi %v", principals, agentapi.Principals())
	}
}

// constValue evaluates a constant expression of literals, + and names
// declared before it in the same file.
func constValue(e ast.Expr, known map[string]constant.Value) constant.Value {
	switch x := e.(type) {
	case *ast.BasicLit:
		return constant.MakeFromLiteral(x.Value, x.Kind, 0)
	case *ast.Ident:
		return known[x.Name]
	case *ast.ParenExpr:
		return constValue(x.X, known)
	case *ast.BinaryExpr:
		l, r := constValue(x.X, known), constValue(x.Y, known)
		if l == nil || r == nil || x.Op != token.ADD {
			return nil
		}
		return constant.BinaryOp(l, x.Op, r)
	}
	return nil
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
		s, err := strconv.Unquote(b.Value)
		if err == nil {
			return s
		}
	}
	t.Fatalf("not a string literal: %s", types.ExprString(e))
	return ""
}

func intLit(t *testing.T, e ast.Expr) int {
	t.Helper()
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.INT {
		n, err := strconv.Atoi(b.Value)
		if err == nil {
			return n
		}
	}
	t.Fatalf("not an int literal: %s", types.ExprString(e))
	return 0
}

var searchMetric = regexp.MustCompile(`MetricName=\\?"(\w+)\\?"`)

// TestInfraMetricsAgree: the alarms and the dashboard of the CDK app
// (infra/cdk/stack/monitoring.go and config.go) name the metrics, the
// dimensions and the refusal reason the agents and the Lambda emit. It
// reads every string literal passed to emf(...), every map key of a
// dimension and the constants, so a renamed metric on either side fails
// here rather than in an alarm that never fires.
func TestInfraMetricsAgree(t *testing.T) {
	dir := filepath.Join(repo.Root(t), "infra", "cdk", "stack")
	fset := token.NewFileSet()
	consts := map[string]constant.Value{}
	var metricNames, dimensionKeys []string
	for _, name := range []string{"config.go", "monitoring.go"} {
		file, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ValueSpec:
				for i, id := range x.Names {
					if i < len(x.Values) {
						if v := constValue(x.Values[i], consts); v != nil {
							consts[id.Name] = v
						}
					}
				}
			case *ast.CallExpr:
				// emf(name, ...) and the dashboard's helpers around it.
				fn, ok := x.Fun.(*ast.Ident)
				if ok && slices.Contains([]string{"emf", "perAgent", "docs"}, fn.Name) && len(x.Args) > 0 {
					if b, ok := x.Args[0].(*ast.BasicLit); ok {
						metricNames = append(metricNames, stringLit(t, b))
					}
				}
			case *ast.BasicLit:
				// SEARCH expressions name the metric inside a string.
				if x.Kind == token.STRING {
					for _, m := range searchMetric.FindAllStringSubmatch(x.Value, -1) {
						metricNames = append(metricNames, m[1])
					}
				}
			case *ast.CompositeLit:
				if m, ok := x.Type.(*ast.MapType); ok && types.ExprString(m.Key) == "string" && types.ExprString(m.Value) == "string" {
					for _, e := range x.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							dimensionKeys = append(dimensionKeys, stringLit(t, kv.Key))
						}
					}
				}
			}
			return true
		})
	}
	str := func(name string) string {
		v, ok := consts[name]
		if !ok || v.Kind() != constant.String {
			t.Fatalf("infra constant %s not found", name)
		}
		return constant.StringVal(v)
	}
	for name, want := range map[string]string{
		"MetricsNamespace":      agentapi.MetricsNamespace,
		"AgentDimension":        agentapi.DimensionAgent,
		"LambdaAgentName":       agentapi.Lambda,
		"BindingMismatchReason": agentapi.ReasonBindingMismatch,
	} {
		if got := str(name); got != want {
			t.Errorf("infra %s = %q, agentapi says %q", name, got, want)
		}
	}
	emitted := []string{agentapi.MetricRequests, agentapi.MetricAuthRefusals, agentapi.MetricInternalErrors, agentapi.MetricLatency,
		agentapi.MetricCertificateDaysToExpiry, agentapi.MetricExtractWorkersKilled, agentapi.MetricDocumentsProcessed,
		agentapi.MetricDocumentsFailed, agentapi.MetricDocumentsRetried, agentapi.MetricTokenFetches, agentapi.MetricColdStart}
	t.Logf("the CDK app reads %v", metricNames)
	if len(metricNames) < 5 {
		t.Fatalf("found only %v in the CDK app: update this test", metricNames)
	}
	for _, m := range metricNames {
		if !slices.Contains(emitted, m) {
			t.Errorf("the CDK app reads metric %q, which nothing emits", m)
		}
	}
	for _, k := range dimensionKeys {
		if k != agentapi.DimensionMethod && k != agentapi.DimensionReason {
			t.Errorf("the CDK app uses dimension %q, which nothing emits", k)
		}
	}
}
