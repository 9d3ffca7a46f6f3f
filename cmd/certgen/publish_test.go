package main

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
)

var publishedLine = regexp.MustCompile(`^published (\S+) \(version (\S+)\)$`)

// published maps each secret name printed to its version id.
func published(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := publishedLine.FindStringSubmatch(line)
		if m == nil || m[2] == "" {
			t.Fatalf("unexpected output line %q", line)
		}
		got[m[1]] = m[2]
	}
	return got
}

func TestPublish(t *testing.T) {
	moto.Env(t, moto.Start(t))
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir, "--agents", "lambda", "orchestrator")

	agents := []string{"lambda", "orchestrator"}
	caCert, _ := certgen.CAPaths(dir)
	want := map[string]string{"test-ca-a2a/ca-cert": caCert} // secret name -> file
	for _, a := range agents {
		c, k := certgen.LeafPaths(dir, a)
		want["test-ca-a2a/"+a+"-cert"], want["test-ca-a2a/"+a+"-key"] = c, k
	}
	args := []string{"publish", "--certs-dir", dir, "--prefix", "test-ca-a2a/", "--agents", "lambda", "orchestrator"}

	first := published(t, mustRun(t, args...))
	if got := slices.Sorted(maps.Keys(first)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("published %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	// Re-issue the leaves, then publish again: a new version of each secret.
	mustRun(t, "--certs-dir", dir, "--agents", "lambda", "orchestrator", "--force")
	second := published(t, mustRun(t, args...))

	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	for name, file := range want {
		if first[name] == second[name] {
			t.Errorf("%s: second publish printed the same version %s", name, first[name])
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if aws.ToString(got.SecretString) != string(data) || got.SecretBinary != nil {
			t.Errorf("%s: secret string is not the PEM of %s", name, file)
		}
		if aws.ToString(got.VersionId) != second[name] {
			t.Errorf("%s: current version %s, want %s", name, aws.ToString(got.VersionId), second[name])
		}
		prev, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(first[name])})
		if err != nil {
			t.Fatalf("%s: first version: %v", name, err)
		}
		if !slices.Contains(prev.VersionStages, "AWSPREVIOUS") {
			t.Errorf("%s: first version stages %v, want AWSPREVIOUS", name, prev.VersionStages)
		}
	}

	var names []string
	for p := secretsmanager.NewListSecretsPaginator(sm, &secretsmanager.ListSecretsInput{}); p.HasMorePages(); {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.SecretList {
			names = append(names, aws.ToString(s.Name))
		}
	}
	if slices.Sort(names); !slices.Equal(names, slices.Sorted(maps.Keys(want))) {
		t.Errorf("secrets %v, want exactly %v (never the CA key)", names, slices.Sorted(maps.Keys(want)))
	}

	// A missing file fails the run before anything is written.
	code, _, errOut := certgenRun(t, "publish", "--certs-dir", dir, "--prefix", "test-ca-a2a/", "--agents", "lambda", "validator")
	if code != 1 || !strings.HasPrefix(errOut, "certgen: nothing published") || !strings.Contains(errOut, "validator-cert.pem") {
		t.Errorf("publishing a missing agent: exit %d %q", code, errOut)
	}
	for _, name := range []string{"test-ca-a2a/ca-cert", "test-ca-a2a/lambda-cert"} {
		v, err := sm.ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Versions) != 2 {
			t.Errorf("%s: %d versions after a failed publish, want 2", name, len(v.Versions))
		}
	}
}
