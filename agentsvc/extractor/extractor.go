// Package extractor reads a document and returns its content: the text of
// each page of a PDF (github.com/ledongthuc/pdf), or the header and rows of
// a CSV (encoding/csv, with the delimiter detected among ',', ';' and tab).
package extractor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path"
	"strings"

	"github.com/ca-a2a/ca-a2a/agentsvc/documents"
	"github.com/ca-a2a/ca-a2a/agentsvc/skill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Document types.
const (
	TypePDF = "pdf"
	TypeCSV = "csv"
)

// Result is extract_document's result.
type Result struct {
	DocumentType  string `json:"document_type"`
	FileName      string `json:"file_name"`
	FileSize      int64  `json:"file_size"`
	SHA256        string `json:"sha256"`
	ExtractedData any    `json:"extracted_data"` // *PDFData or *CSVData
}

// PDFData is the extracted content of a PDF.
type PDFData struct {
	PageCount int    `json:"page_count"`
	Pages     []Page `json:"pages"`
}

// Page is one page's text.
type Page struct {
	Number int    `json:"number"`
	Text   string `json:"text"`
}

// CSVData is the extracted content of a CSV. Rows may be ragged: the
// validator reports them.
type CSVData struct {
	Delimiter   string     `json:"delimiter"`
	Headers     []string   `json:"headers"`
	Rows        [][]string `json:"rows"`
	RowCount    int        `json:"row_count"`
	ColumnCount int        `json:"column_count"`
}

// Options configure an Extractor.
type Options struct {
	// MaxBytes bounds a document (default 20 MiB).
	MaxBytes int64
}

// Extractor offers extract_document and list_supported_formats.
type Extractor struct {
	store documents.Store
	opts  Options
}

// New returns an Extractor reading from store.
func New(store documents.Store, opts Options) *Extractor {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = documents.DefaultMaxBytes
	}
	return &Extractor{store: store, opts: opts}
}

// Methods returns the extractor's methods.
func (e *Extractor) Methods() []skill.Method {
	return []skill.Method{
		{Name: "extract_document", Description: "Extract text (PDF, per page) or header and rows (CSV): {s3_key}.", Handler: e.extractDocument},
		{Name: "list_supported_formats", Description: "The document formats this extractor reads.", Handler: e.listFormats},
	}
}

func (e *Extractor) extractDocument(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		S3Key string `json:"s3_key"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := documents.CheckKey(p.S3Key); err != nil {
		return nil, jsonrpc.InvalidParams("s3_key is not a valid object key")
	}
	kind := typeOf(p.S3Key)
	if kind == "" {
		return nil, jsonrpc.InvalidParams("unsupported document type: want .pdf or .csv")
	}
	obj, err := e.store.Get(ctx, p.S3Key, e.opts.MaxBytes)
	if err != nil {
		return nil, mapStoreError(err, e.opts.MaxBytes)
	}
	return Extract(p.S3Key, obj.Data)
}

// Extract extracts data, named key, by its type. Errors are *jsonrpc.Error.
func Extract(key string, data []byte) (*Result, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, jsonrpc.InvalidParams("empty document")
	}
	sum := sha256.Sum256(data)
	res := &Result{FileName: path.Base(key), FileSize: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	var err error
	switch typeOf(key) {
	case TypePDF:
		res.DocumentType = TypePDF
		res.ExtractedData, err = ExtractPDF(data)
	case TypeCSV:
		res.DocumentType = TypeCSV
		res.ExtractedData, err = ExtractCSV(data)
	default:
		return nil, jsonrpc.InvalidParams("unsupported document type: want .pdf or .csv")
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func typeOf(key string) string {
	switch strings.ToLower(path.Ext(key)) {
	case ".pdf":
		return TypePDF
	case ".csv":
		return TypeCSV
	}
	return ""
}

func mapStoreError(err error, limit int64) error {
	switch {
	case errors.Is(err, documents.ErrInvalidKey):
		return jsonrpc.InvalidParams("s3_key is not a valid object key")
	case errors.Is(err, documents.ErrNotFound):
		return jsonrpc.Errorf(jsonrpc.CodeNotFound, "document not found")
	case errors.Is(err, documents.ErrTooLarge):
		return jsonrpc.InvalidParams("document larger than the %d-byte limit", limit)
	default:
		return jsonrpc.Errorf(jsonrpc.CodeUnavailable, "document store unavailable")
	}
}

type format struct {
	Type       string   `json:"type"`
	Extensions []string `json:"extensions"`
	MIMEType   string   `json:"mime_type"`
}

func (e *Extractor) listFormats(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return map[string]any{
		"formats": []format{
			{Type: TypePDF, Extensions: []string{".pdf"}, MIMEType: "application/pdf"},
			{Type: TypeCSV, Extensions: []string{".csv"}, MIMEType: "text/csv"},
		},
		"max_bytes": e.opts.MaxBytes,
	}, nil
}
