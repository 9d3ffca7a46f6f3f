package agentapi

// Document types.
const (
	DocumentTypePDF = "pdf"
	DocumentTypeCSV = "csv"
)

// ExtractParams are extract_document's params. S3Key is an object key,
// never a path.
type ExtractParams struct {
	S3Key string `json:"s3_key"`
}

// ExtractResult is extract_document's result. D is how ExtractedData is
// held: the extractor fills it with *PDFData or *CSVData (D = any); the
// orchestrator, which passes the data on to the validator and the archivist
// untouched, reads it as json.RawMessage.
type ExtractResult[D any] struct {
	// DocumentType is DocumentTypePDF or DocumentTypeCSV.
	DocumentType string `json:"document_type"`
	// FileName is the last segment of the key.
	FileName string `json:"file_name"`
	// FileSize is the document's size in bytes.
	FileSize int64 `json:"file_size"`
	// SHA256 is the hex SHA-256 of the document's bytes.
	SHA256 string `json:"sha256"`
	// ExtractedData is PDFData or CSVData, by DocumentType.
	ExtractedData D `json:"extracted_data"`
}

// MaxExtractedDataBytes bounds the encoded extracted_data of one document:
// the hop limit less 64 KiB kept for what travels with it (the result's
// other members, the validator's and the archivist's params, the JSON-RPC
// envelope), so that data the extractor returns can always be passed on.
// Extraction stops with CodeTooLarge as soon as the data would pass it.
const MaxExtractedDataBytes = MaxBodyBytes - 64<<10

// ExtractFailure is the data of an extract_document error about a document
// that was read but cannot be extracted (-32602, CodeTooLarge): what the
// orchestrator needs to key and describe the failed document. The hash lets
// a failed document keep the id a successful one would have had.
type ExtractFailure struct {
	DocumentType string `json:"document_type"`
	FileName     string `json:"file_name"`
	FileSize     int64  `json:"file_size"`
	SHA256       string `json:"sha256"`
}

// PDFData is the text of a PDF, page by page.
type PDFData struct {
	Pages     []Page `json:"pages"`
	PageCount int    `json:"page_count"`
	// Metadata holds the document information dictionary's text entries
	// that are present and not blank, under the keys title, author,
	// subject, keywords, creator, producer, creation_date and mod_date
	// (dates as written in the PDF, e.g. "D:20260102150405+01'00'").
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Page is one page's text. Number counts from 1.
type Page struct {
	Number int    `json:"number"`
	Text   string `json:"text"`
}

// CSVData is a CSV's header and rows. The first record is the header; each
// row is an array of strings in file order (not an object keyed by header,
// so that duplicate or empty column names lose nothing). Rows may be ragged
// (their length may differ from the header's): the validator reports them.
type CSVData struct {
	Headers     []string   `json:"headers"`
	Rows        [][]string `json:"rows"`
	RowCount    int        `json:"row_count"`
	ColumnCount int        `json:"column_count"`
	// Delimiter is ",", ";" or "\t".
	Delimiter string `json:"delimiter"`
}

// Format describes one supported format (list_supported_formats).
type Format struct {
	Type       string   `json:"type"`
	Extensions []string `json:"extensions"`
	MIMEType   string   `json:"mime_type"`
	// MaxBytes is the largest document of this type the extractor reads.
	MaxBytes int64 `json:"max_bytes"`
}

// FormatsResult is list_supported_formats's result.
type FormatsResult struct {
	Formats []Format `json:"formats"`
}
