package documents_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ca-a2a/ca-a2a/agentsvc/documents"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
)

func TestCheckKey(t *testing.T) {
	good := []string{"a.pdf", "incoming/2026/report.csv", "with space.pdf", "ünïcode.csv", "a..b.pdf"}
	bad := []string{"", "/etc/passwd", "../secret", "a/../../b", "a/./b", "./a", "a//b", "a/", `a\b`, "a\x00b", "a\nb", "C:/x", "..", "."}
	for _, k := range good {
		if err := documents.CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v", k, err)
		}
	}
	for _, k := range bad {
		if err := documents.CheckKey(k); !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestDir(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "docs")
	ctx := t.Context()
	store, err := documents.Open(ctx, "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "in/a.csv", []byte("x,y\n1,2\n")); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "b.pdf", []byte("%PDF-1.4")); err != nil {
		t.Fatal(err)
	}
	// A symbolic link inside the root that points outside it.
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(root, "escape.csv")); err != nil {
		t.Fatal(err)
	}
	obj, err := store.Get(ctx, "in/a.csv", 0)
	if err != nil || !bytes.Equal(obj.Data, []byte("x,y\n1,2\n")) || obj.Size != 8 {
		t.Fatalf("Get: %v %+v", err, obj)
	}
	for key, want := range map[string]error{
		"missing.pdf":         documents.ErrNotFound,
		"escape.csv":          documents.ErrInvalidKey,
		"../secret.txt":       documents.ErrInvalidKey,
		"in/../../secret.txt": documents.ErrInvalidKey,
		"in":                  documents.ErrNotFound,
	} {
		if _, err := store.Get(ctx, key, 0); !errors.Is(err, want) {
			t.Errorf("Get(%q) = %v, want %v", key, err, want)
		}
	}
	if _, err := store.Get(ctx, "in/a.csv", 4); !errors.Is(err, documents.ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
	keys, err := store.List(ctx, "", 0)
	if err != nil || len(keys) != 2 || keys[0] != "b.pdf" || keys[1] != "in/a.csv" {
		t.Fatalf("List = %v %v (symlinks must be skipped)", keys, err)
	}
	if keys, _ := store.List(ctx, "in/", 0); len(keys) != 1 {
		t.Fatalf("List(in/) = %v", keys)
	}
	if _, err := store.List(ctx, "../", 0); !errors.Is(err, documents.ErrInvalidKey) {
		t.Fatalf("List(../) = %v", err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := documents.Open(ctx, "ftp://x"); err == nil {
		t.Fatal("unknown scheme accepted")
	}
}

func TestS3(t *testing.T) {
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	ctx := t.Context()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("docs"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest3}}); err != nil {
		t.Fatal(err)
	}
	store, err := documents.Open(ctx, "s3://docs/incoming")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "r.csv", []byte("a,b\n")); err != nil {
		t.Fatal(err)
	}
	obj, err := store.Get(ctx, "r.csv", 0)
	if err != nil || string(obj.Data) != "a,b\n" || obj.Bucket != "docs" || obj.ETag == "" {
		t.Fatalf("Get: %v %+v", err, obj)
	}
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("docs"), Key: aws.String("incoming/r.csv")}); err != nil {
		t.Fatalf("prefix not applied: %v", err)
	}
	if _, err := store.Get(ctx, "nope.csv", 0); !errors.Is(err, documents.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := store.Get(ctx, "../x", 0); !errors.Is(err, documents.ErrInvalidKey) {
		t.Fatalf("traversal: %v", err)
	}
	if _, err := store.Get(ctx, "r.csv", 2); !errors.Is(err, documents.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if keys, err := store.List(ctx, "", 0); err != nil || len(keys) != 1 || keys[0] != "r.csv" {
		t.Fatalf("List = %v %v", keys, err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	gone, _ := documents.Open(ctx, "s3://no-such-bucket")
	if err := gone.Ping(ctx); err == nil {
		t.Fatal("ping of a missing bucket succeeded")
	}
}
