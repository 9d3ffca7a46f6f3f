package archive

import (
	"fmt"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Reading rows is the same on both engines: the operations (ops.go) hand
// the answer to these helpers through the part of *sql.Row(s) (SQLite) and
// pgx.Row(s) (PostgreSQL) they share. The scan targets work
// for both drivers: database/sql and pgx both fill a **int, **bool or
// **string with nil for NULL, and both hand a sql.Scanner (stamp) the
// column's value.

// columns are what scanDocument reads, in its order.
const columns = `document_id, s3_key, bucket, document_type, file_name, sha256, status, score, passed, extracted_data, validation, stage, error, created_at, updated_at`

// summaryColumns are what scanSummaries reads, in its order: columns
// without extracted_data.
const summaryColumns = `document_id, s3_key, bucket, document_type, file_name, sha256, status, score, passed, validation, stage, error, created_at, updated_at`

// row is one result row: *sql.Row, pgx.Row.
type row interface {
	Scan(dest ...any) error
}

// rows is a result set: pgx.Rows, or *sql.Rows behind sqlRows (whose
// Close returns an error). The caller closes it.
type rows interface {
	row
	Next() bool
	Err() error
	Close()
}

// scanDocument reads one row of columns. The driver's error comes back
// unwrapped, so that the caller can tell its engine's "no rows" apart.
func scanDocument(r row) (*agentapi.Document, error) {
	var d agentapi.Document
	var extracted, validation *string
	if err := r.Scan(&d.DocumentID, &d.S3Key, &d.Bucket, &d.DocumentType, &d.FileName, &d.SHA256, &d.Status,
		&d.Score, &d.Passed, &extracted, &validation, &d.Stage, &d.Error, stamp{&d.CreatedAt}, stamp{&d.UpdatedAt}); err != nil {
		return nil, err
	}
	d.ExtractedData, d.Validation = rawJSON(extracted), rawJSON(validation)
	return &d, nil
}

// scanSummaries reads every row of summaryColumns. A page is never nil, so
// that it encodes as [] rather than null.
func scanSummaries(rs rows) ([]agentapi.DocumentSummary, error) {
	page := []agentapi.DocumentSummary{}
	for rs.Next() {
		var d agentapi.DocumentSummary
		var validation *string
		if err := rs.Scan(&d.DocumentID, &d.S3Key, &d.Bucket, &d.DocumentType, &d.FileName, &d.SHA256, &d.Status,
			&d.Score, &d.Passed, &validation, &d.Stage, &d.Error, stamp{&d.CreatedAt}, stamp{&d.UpdatedAt}); err != nil {
			return nil, err
		}
		d.Validation = rawJSON(validation)
		page = append(page, d)
	}
	return page, rs.Err()
}

// aggregateStats adds up the rows of the stats query, grouped by status and
// document type: status, document_type, COUNT(*), COUNT(score),
// COALESCE(SUM(score), 0). A document without a type counts as "unknown";
// the average is over scored documents only, absent when none is.
func aggregateStats(rs rows) (*agentapi.DocumentStats, error) {
	st := &agentapi.DocumentStats{ByStatus: map[string]int{}, ByType: map[string]int{}}
	var scored, sum int64
	for rs.Next() {
		var status, docType string
		var n, ns, ss int64
		if err := rs.Scan(&status, &docType, &n, &ns, &ss); err != nil {
			return nil, err
		}
		if docType == "" {
			docType = "unknown"
		}
		st.Total += int(n)
		st.ByStatus[status] += int(n)
		st.ByType[docType] += int(n)
		scored, sum = scored+ns, sum+ss
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	if scored > 0 {
		avg := float64(sum) / float64(scored)
		st.AverageScore = &avg
	}
	return st, nil
}

func rawJSON(p *string) []byte {
	if p == nil {
		return nil
	}
	return []byte(*p)
}

// stamp scans a timestamp as both engines store it, SQLite's text in
// timeLayout or PostgreSQL's timestamptz, into the text the contract
// answers (timeLayout), so both engines answer alike.
type stamp struct{ dst *string }

// Scan implements sql.Scanner.
func (s stamp) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*s.dst = v
	case []byte:
		*s.dst = string(v)
	case time.Time:
		*s.dst = stampOf(v)
	default:
		return fmt.Errorf("archivist: timestamp column holds %T", src)
	}
	return nil
}

// stampOf formats t as SQLite stores it (timeLayout).
func stampOf(t time.Time) string { return t.UTC().Format(timeLayout) }
