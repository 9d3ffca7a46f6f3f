package extractor

// SetDecodedLimit lowers the PDF decompression budget for a test and
// restores it after. It applies to Parse in the test process only: workers
// are fresh processes with the default.
func SetDecodedLimit(decoded int64) (restore func()) {
	d := maxDecodedBytes
	maxDecodedBytes = decoded
	return func() { maxDecodedBytes = d }
}

// JSONString writes s as jsonWriter.str does, through chunks of the given
// writer, for tests of the encoder.
var JSONString = func(s string) ([]byte, error) {
	var b cappedBuffer
	b.max = 1 << 40
	j := newJSONWriter(&b)
	j.str(s)
	if err := j.flush(); err != nil {
		return nil, err
	}
	return b.buf.Bytes(), nil
}

// WriteCSV is the worker's CSV parse, for tests of the output bound.
var WriteCSV = writeCSV

// SetMinCPUShare changes the share of the time limit a worker must have
// spent on the CPU for a time limit to blame the document.
func SetMinCPUShare(e *Extractor, share float64) { e.minCPUShare = share }

// CPUShareThreshold is the share of the wall clock a worker killed by the
// time limit must have used on the CPU for its document to be blamed.
func CPUShareThreshold(e *Extractor) float64 { return e.minCPUShare }
