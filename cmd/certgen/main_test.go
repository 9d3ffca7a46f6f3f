package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

func TestAgentsFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{nil, strings.Join(certgen.DefaultAgents, ","), false},
		{[]string{"--agents", "orchestrator", "lambda", "--force"}, "orchestrator,lambda", false},
		{[]string{"--agents", "a,b"}, "a,b", false},
		{[]string{"--force", "--agents", "x"}, "x", false},
		{[]string{"--agents"}, "", true},
		{[]string{"--agents", "Bad_Name"}, "", true},
		{[]string{"--agents", "../etc"}, "", true},
		{[]string{"stray"}, "", true},
	}
	for _, tc := range tests {
		o, err := parseGenerate(tc.args)
		got := strings.Join(o.Agents, ",")
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("%v: agents %q err %v", tc.args, got, err)
		}
	}
	if code := run(t.Context(), []string{"--key-type", "dsa", "--certs-dir", t.TempDir()}); code != 2 {
		t.Fatalf("bad key type: exit %d, want 2", code)
	}
}

func TestThumbprintMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("SKIPPING: openssl not installed")
	}
	dir := t.TempDir()
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	certPath, _ := certgen.LeafPaths(dir, "lambda")
	out, err := exec.Command("sh", "-c", "openssl x509 -in "+certPath+" -outform der | openssl dgst -sha256 -binary").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := base64.RawURLEncoding.EncodeToString(out)
	bin := filepath.Join(t.TempDir(), "certgen")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, b)
	}
	got, err := exec.Command(bin, "thumbprint", certPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Fatalf("certgen thumbprint %q, openssl %q", got, want)
	}
}
