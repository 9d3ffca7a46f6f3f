package stack_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

// TestSynthBundlesLambdaForSAMAndPassesCfnLint synthesizes the app as
// `cdk synth` does, with the Lambda built by the local Go toolchain, checks
// the bootstrap is a linux/arm64 executable that SAM can find through the
// function's asset metadata, and runs cfn-lint on both templates.
func TestSynthBundlesLambdaForSAMAndPassesCfnLint(t *testing.T) {
	app, cfg := newApp(t, map[string]any{"aws:cdk:bundling-stacks": []string{"**"}})
	stack.Build(app, cfg)
	out := *app.Synth(nil).Directory()

	templates := []string{
		filepath.Join(out, stack.AppStackID+".template.json"),
		filepath.Join(out, stack.SecretsStackID+".template.json"),
	}
	raw, err := os.ReadFile(templates[0])
	if err != nil {
		t.Fatal(err)
	}
	var tp tmpl
	if err := json.Unmarshal(raw, &tp); err != nil {
		t.Fatal(err)
	}
	var fn *resource
	for _, id := range tp.ofType("AWS::Lambda::Function") {
		if r := tp.Resources[id]; r.Metadata["aws:cdk:path"] == stack.AppStackID+"/DocumentsFunction/Resource" {
			fn = &r
		}
	}
	if fn == nil {
		t.Fatal("no DocumentsFunction in the template")
	}
	// What `sam local invoke -t cdk.out/CaA2a.template.json` reads.
	assetPath, _ := fn.Metadata["aws:asset:path"].(string)
	if fn.Metadata["aws:asset:property"] != "Code" || fn.Metadata["aws:asset:is-bundled"] != true || assetPath == "" {
		t.Fatalf("SAM metadata = %v", fn.Metadata)
	}
	f, err := elf.Open(filepath.Join(out, assetPath, "bootstrap"))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
		t.Errorf("bootstrap is %v %v, want an arm64 executable", f.Machine, f.Type)
	}
	if f.Section(".interp") != nil {
		t.Error("bootstrap is dynamically linked; provided.al2023 needs CGO_ENABLED=0")
	}

	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cfn-lint is not installed; CI must run it on the synthesized templates")
		}
		t.Skip("SKIPPING cfn-lint: not installed (CI fails here)")
	}
	cmd := exec.Command(lint, append([]string{"--non-zero-exit-code", "error", "--"}, templates...)...)
	outb, err := cmd.CombinedOutput()
	t.Logf("cfn-lint (warnings are informational):\n%s", outb)
	if err != nil {
		t.Fatalf("cfn-lint found errors: %v", err)
	}
}
