package stack_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

// synthesized is one app built with a given context, its templates and
// the constructs behind them.
type synthesized struct {
	dep            *stack.Deployment
	app, secrets   assertions.Template
	appT, secretsT tmpl
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*synthesized{}
)

// cdkJSONContext is the context of cdk.json, so the tests synthesize what
// `cdk synth` does.
func cdkJSONContext(t testing.TB) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f.Context
}

// newApp returns an app with cdk.json's context plus extra. Unless extra
// says otherwise, asset bundling is skipped (the Lambda's go build is
// covered by TestSynthBundlesLambdaForSAMAndPassesCfnLint).
func newApp(t testing.TB, extra map[string]any) (awscdk.App, stack.Config) {
	t.Helper()
	ctx := cdkJSONContext(t)
	ctx["aws:cdk:bundling-stacks"] = []string{}
	ctx["aws:cdk:enable-path-metadata"] = true
	ctx["aws:cdk:enable-asset-metadata"] = true
	maps.Copy(ctx, extra)
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := stack.ConfigFromContext(app, root)
	if err != nil {
		t.Fatal(err)
	}
	return app, cfg
}

// synth builds (once per context) the deployment and its templates.
func synth(t *testing.T, extra map[string]any) *synthesized {
	t.Helper()
	keyb, _ := json.Marshal(extra)
	key := string(keyb)
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if s, ok := cache[key]; ok {
		return s
	}
	// The outdir must outlive the test that first asks for it.
	app, cfg := newApp(&persistentTB{TB: t}, extra)
	dep := stack.Build(app, cfg)
	s := &synthesized{
		dep:     dep,
		app:     assertions.Template_FromStack(dep.App.Stack, nil),
		secrets: assertions.Template_FromStack(dep.Secrets.Stack, nil),
	}
	s.appT = toTmpl(t, s.app)
	s.secretsT = toTmpl(t, s.secrets)
	cache[key] = s
	return s
}

// outRoot holds the cloud assemblies shared between tests; TestMain
// removes it, and stops the jsii runtime so its files go too.
var outRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ca-a2a-cdk-test-")
	if err != nil {
		panic(err)
	}
	outRoot = dir
	code := m.Run()
	jsii.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// persistentTB gives a TempDir that is not removed when the first test ends.
type persistentTB struct{ testing.TB }

func (p *persistentTB) TempDir() string {
	d, err := os.MkdirTemp(outRoot, "app-")
	if err != nil {
		p.Fatal(err)
	}
	return d
}

// tmpl is a template as plain JSON, for checks that compare whole sets.
type tmpl struct {
	Resources map[string]resource `json:"Resources"`
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
	DependsOn  any            `json:"DependsOn"`
}

func toTmpl(t *testing.T, tp assertions.Template) tmpl {
	t.Helper()
	raw, err := json.Marshal(tp.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var out tmpl
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ofType returns the logical ids of the resources of type typ, sorted.
func (tp tmpl) ofType(typ string) []string {
	var ids []string
	for id, r := range tp.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// byPath returns the logical id of the resource whose aws:cdk:path is path.
func (tp tmpl) byPath(t *testing.T, path string) (string, resource) {
	t.Helper()
	for id, r := range tp.Resources {
		if p, _ := r.Metadata["aws:cdk:path"].(string); p == path {
			return id, r
		}
	}
	t.Fatalf("no resource at path %s", path)
	return "", resource{}
}

// construct returns the construct name (second path element) of a logical
// id, e.g. "OrchestratorSG" for the security group of the orchestrator.
func (tp tmpl) construct(id string) string {
	p, _ := tp.Resources[id].Metadata["aws:cdk:path"].(string)
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return id
	}
	return parts[1]
}

// ref returns the logical id a {"Ref": X} or {"Fn::GetAtt": [X, ...]}
// points to, or "" when v is neither.
func ref(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
		s, _ := ga[0].(string)
		return s
	}
	return ""
}

// importName returns the export name of {"Fn::ImportValue": NAME}.
func importName(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["Fn::ImportValue"].(string)
	return s
}

// statements returns the statements of every AWS::IAM::Policy attached to
// the role with logical id role.
func (tp tmpl) statements(role string) []map[string]any {
	var out []map[string]any
	for _, id := range tp.ofType("AWS::IAM::Policy") {
		p := tp.Resources[id].Properties
		attached := false
		for _, r := range p["Roles"].([]any) {
			if ref(r) == role {
				attached = true
			}
		}
		if !attached {
			continue
		}
		doc := p["PolicyDocument"].(map[string]any)
		for _, st := range doc["Statement"].([]any) {
			out = append(out, st.(map[string]any))
		}
	}
	return out
}

// list turns a string-or-list IAM field into a list.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// envOf returns a container definition's environment as a map.
func envOf(c map[string]any) map[string]any {
	env := map[string]any{}
	for _, e := range list(c["Environment"]) {
		kv := e.(map[string]any)
		env[kv["Name"].(string)] = kv["Value"]
	}
	return env
}

// container returns the only container definition of a task definition.
func container(t *testing.T, td resource) map[string]any {
	t.Helper()
	cds := list(td.Properties["ContainerDefinitions"])
	if len(cds) != 1 {
		t.Fatalf("task definition has %d containers, want 1", len(cds))
	}
	return cds[0].(map[string]any)
}

// newAppNoConfig is newApp without reading the config, for invalid contexts.
func newAppNoConfig(t testing.TB, extra map[string]any) (awscdk.App, error) {
	ctx := cdkJSONContext(t)
	maps.Copy(ctx, extra)
	return awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())}), nil
}

// render turns a template value into a string: literal strings as they
// are, Fn::Join by joining its rendered parts, {"Ref": X} as ${X},
// {"Fn::GetAtt": [X, A]} as ${X.A} and {"Fn::ImportValue": N} as ${import:N}.
// It is how the tests read URLs and documents built from attributes.
func render(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case map[string]any:
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			var parts []string
			for _, p := range list(j[1]) {
				parts = append(parts, render(t, p))
			}
			return strings.Join(parts, j[0].(string))
		}
		if r, ok := x["Ref"].(string); ok {
			return "${" + r + "}"
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			return fmt.Sprintf("${%v.%v}", ga[0], ga[1])
		}
		if n := importName(x); n != "" {
			return "${import:" + n + "}"
		}
	}
	t.Fatalf("cannot render %v", v)
	return ""
}

// secretsOf returns a container definition's ECS secrets: name -> the
// construct of the secret (a secrets-stack secret such as "CaCert", or an
// application-stack secret such as "KeycloakDb" followed by ":" and the JSON
// field it reads).
func secretsOf(t *testing.T, s *synthesized, c map[string]any) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, sec := range list(c["Secrets"]) {
		m := sec.(map[string]any)
		name := m["Name"].(string)
		if importName(m["ValueFrom"]) != "" {
			got[name] = secretExport(t, s, m["ValueFrom"])
			continue
		}
		// In-stack secret: {"Fn::Join": ["", [{"Ref": attachment}, ":field::"]]}.
		j := m["ValueFrom"].(map[string]any)["Fn::Join"].([]any)[1].([]any)
		field := strings.Trim(j[1].(string), ":")
		got[name] = s.appT.construct(ref(j[0])) + ":" + field
	}
	return got
}
