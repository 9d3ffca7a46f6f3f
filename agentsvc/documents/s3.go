package documents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 is a Store on an S3 bucket, under an optional prefix.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // "" or ends with "/"
}

// OpenS3 returns a store on bucket/prefix. A nil client is built from the
// default AWS configuration (AWS_ENDPOINT_URL included, with path-style
// addressing when an endpoint is set, as local S3 stand-ins need).
func OpenS3(ctx context.Context, bucket, prefix string, client *s3.Client) (*S3, error) {
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
		pathStyle := os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
		client = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	}
	return &S3{client: client, bucket: bucket, prefix: prefix}, nil
}

// Bucket returns the bucket.
func (s *S3) Bucket() string { return s.bucket }

// Get reads key.
func (s *S3) Get(ctx context.Context, key string, maxBytes int64) (*Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, mapS3Error(err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, *out.ContentLength, maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: limit %d", ErrTooLarge, maxBytes)
	}
	return &Object{Key: key, Bucket: s.bucket, Data: data, Size: int64(len(data)), ETag: strings.Trim(aws.ToString(out.ETag), `"`)}, nil
}

// List returns up to limit keys under prefix.
func (s *S3) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapS3Error(err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if CheckKey(key) == nil {
				keys = append(keys, key)
			}
			if limit > 0 && len(keys) >= limit {
				return keys, nil
			}
		}
	}
	return keys, nil
}

// Put writes key.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key), Body: strings.NewReader(string(data))})
	if err != nil {
		return mapS3Error(err)
	}
	return nil
}

// Ping checks the bucket is reachable.
func (s *S3) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return mapS3Error(err)
	}
	return nil
}

func mapS3Error(err error) error {
	var noKey *types.NoSuchKey
	var notFound *types.NotFound
	var api smithy.APIError
	switch {
	case errors.As(err, &noKey), errors.As(err, &notFound):
		return ErrNotFound
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchKey":
		return ErrNotFound
	default:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}
