package documents_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
)

// TestS3 runs the S3 store against moto_server through the real SDK, built
// by Open from AWS_ENDPOINT_URL as in a deployment.
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
	// Objects outside the store prefix and a "directory" marker inside it.
	for _, k := range []string{"other/x.csv", "incoming/sub/", "incoming-not/y.csv"} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("docs"), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}

	store, err := documents.Open(ctx, "s3://docs/incoming")
	if err != nil {
		t.Fatal(err)
	}
	if store.Location() != "docs" || store.Bucket() != "docs" {
		t.Fatalf("location %q bucket %q", store.Location(), store.Bucket())
	}
	for key, data := range map[string]string{"r.csv": "a,b\n1,2\n", "sub/q.pdf": "%PDF-1.4", "ten.csv": "0123456789"} {
		if err := documents.Put(ctx, store, key, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("docs"), Key: aws.String("incoming/r.csv")}); err != nil {
		t.Fatalf("prefix not applied on Put: %v", err)
	}

	gets := []struct {
		key  string
		max  int64
		want string
		err  error
	}{
		{key: "r.csv", want: "a,b\n1,2\n"},
		{key: "sub/q.pdf", want: "%PDF-1.4"},
		{key: "ten.csv", max: 10, want: "0123456789"},
		{key: "ten.csv", max: 9, err: documents.ErrTooLarge},
		{key: "nope.csv", err: documents.ErrNotFound},
		{key: "../other/x.csv", err: documents.ErrInvalidKey},
		{key: "/incoming/r.csv", err: documents.ErrInvalidKey},
		{key: "sub/./q.pdf", err: documents.ErrInvalidKey},
		{key: "%2e%2e/other/x.csv", err: documents.ErrInvalidKey},
	}
	for _, tc := range gets {
		obj, err := store.Get(ctx, tc.key, tc.max)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Get(%q, %d) = %v, want %v", tc.key, tc.max, err, tc.err)
			}
			continue
		}
		if err != nil || string(obj.Data) != tc.want || obj.Bucket != "docs" || obj.Key != tc.key || obj.ETag == "" || strings.Contains(obj.ETag, `"`) || obj.LastModified.IsZero() {
			t.Errorf("Get(%q) = %+v, %v", tc.key, obj, err)
		}
	}

	lists := []struct {
		prefix string
		limit  int
		want   string
	}{
		{"", 0, "r.csv sub/q.pdf ten.csv"}, // the "sub/" marker is not a key
		{"", 1, "r.csv"},
		{"sub/", 0, "sub/q.pdf"},
		{"x", 0, ""},
	}
	for _, tc := range lists {
		keys, err := store.List(ctx, tc.prefix, tc.limit)
		if err != nil || strings.Join(keys, " ") != tc.want {
			t.Errorf("List(%q, %d) = %q, %v; want %q", tc.prefix, tc.limit, keys, err, tc.want)
		}
	}
	if _, err := store.List(ctx, "../", 0); !errors.Is(err, documents.ErrInvalidKey) {
		t.Errorf("List(../) = %v", err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	gone, err := documents.Open(ctx, "s3://no-such-bucket")
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Ping(ctx); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Ping of a missing bucket = %v, want ErrUnavailable", err)
	}
	if _, err := gone.Get(ctx, "r.csv", 0); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Get from a missing bucket = %v, want ErrUnavailable", err)
	}
}

// TestS3Unreachable: a store whose endpoint does not answer reports
// ErrUnavailable, never ErrNotFound.
func TestS3Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	client := s3.New(s3.Options{
		Region:           "eu-west-3",
		BaseEndpoint:     aws.String("http://" + addr),
		UsePathStyle:     true,
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	})
	store, err := documents.Open(t.Context(), "s3://docs", documents.Options{S3Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(t.Context(), "a.csv", 0); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable", err)
	}
	if _, err := store.List(t.Context(), "", 0); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
	if err := store.Ping(t.Context()); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
}

// countingS3 fails the test on any call: keys must be refused before a
// request is made.
type countingS3 struct {
	documents.S3API
	calls atomic.Int32
}

func (c *countingS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.calls.Add(1)
	return nil, errors.New("unexpected call")
}

func (c *countingS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.calls.Add(1)
	return nil, errors.New("unexpected call")
}

func TestS3InvalidKeyBeforeIO(t *testing.T) {
	fake := &countingS3{}
	store, err := documents.Open(t.Context(), "s3://docs/in", documents.Options{S3Client: fake})
	if err != nil {
		t.Fatal(err)
	}
	// With the 3-byte prefix "in/", a 1024-byte key is over S3's limit.
	for _, key := range []string{"", "../x", "/x", "a/./b", `a\b`, "a\x00", "a/../../etc/passwd", "%2e%2e/x", "%252e%252e%252fx", strings.Repeat("k", 1022)} {
		if _, err := store.Get(t.Context(), key, 0); !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := documents.Put(t.Context(), store, key, nil); !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if n := fake.calls.Load(); n != 0 {
		t.Fatalf("%d requests made for invalid keys", n)
	}
}
