package documents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the part of the S3 client a store uses; *s3.Client satisfies it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	s3.ListObjectsV2APIClient
}

// S3 is a Store on an S3 bucket, under an optional prefix that keys are
// relative to.
type S3 struct {
	client S3API
	bucket string
	prefix string // "" or ends with "/"
}

// bucketName is S3's naming rule for general purpose buckets.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// OpenS3 returns a store on bucket/prefix. A nil client is built from the
// default AWS configuration, AWS_ENDPOINT_URL included; when an endpoint is
// overridden the client uses path-style addressing, which local S3
// stand-ins such as moto_server need.
func OpenS3(ctx context.Context, bucket, prefix string, client S3API) (*S3, error) {
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return nil, fmt.Errorf("documents: %q is not a valid bucket name", bucket)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("documents: bad prefix in DOCUMENTS_URL: %w", err)
	}
	if client == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("documents: AWS configuration: %w", err)
		}
		pathStyle := cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
		client = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	}
	return &S3{client: client, bucket: bucket, prefix: prefix}, nil
}

// Location returns the bucket.
func (s *S3) Location() string { return s.bucket }

// Bucket returns the bucket.
func (s *S3) Bucket() string { return s.bucket }

func (s *S3) objectKey(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if len(s.prefix)+len(key) > MaxKeyLen {
		return "", fmt.Errorf("%w: longer than %d bytes with the store prefix", ErrInvalidKey, MaxKeyLen)
	}
	return s.prefix + key, nil
}

// Get reads key.
func (s *S3) Get(ctx context.Context, key string, maxBytes int64) (*Object, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	maxBytes = maxOrDefault(maxBytes)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return nil, mapS3Error(err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > maxBytes {
		return nil, tooLarge(n, maxBytes)
	}
	data, err := readAll(out.Body, maxBytes, aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, err
	}
	return &Object{
		Key:          key,
		Bucket:       s.bucket,
		Data:         data,
		Size:         int64(len(data)),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// List returns up to limit keys under prefix, relative to the store prefix,
// in S3's (lexicographic) order.
func (s *S3) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapS3Error(err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if CheckKey(key) != nil {
				continue // "dir/" markers and keys no Get would accept
			}
			keys = append(keys, key)
			if limit > 0 && len(keys) >= limit {
				return keys, nil
			}
		}
	}
	return keys, nil
}

// Put writes key.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	full, err := s.objectKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(full),
		Body:   bytes.NewReader(data),
	})
	if err != nil {
		return mapS3Error(err)
	}
	return nil
}

// Ping checks that the bucket exists and is reachable.
func (s *S3) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// mapS3Error maps a missing object to ErrNotFound and anything else (missing
// bucket, access denied, network) to ErrUnavailable.
func mapS3Error(err error) error {
	var noKey *types.NoSuchKey
	var api smithy.APIError
	switch {
	case errors.As(err, &noKey):
		return ErrNotFound
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchKey":
		return ErrNotFound
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}
