package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Row is one line of the results: a ratio of two figures measured side by
// side (or, for the Lambda, counts), the target it is read against, and
// the raw figures it came from.
type Row struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Ratio is Numerator / Denominator as described by Of; nil when the row
	// counts instead, or was skipped.
	Ratio *float64 `json:"ratio,omitempty"`
	Of    string   `json:"of"`
	// Target is what the row is read against; Met says whether this run
	// meets it (nil: no target). Nothing fails on it.
	Target string             `json:"target,omitempty"`
	Met    *bool              `json:"met,omitempty"`
	Detail string             `json:"detail"`
	Values map[string]float64 `json:"values,omitempty"`
	// Skipped or Error say why the row has no figure.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Report is one run.
type Report struct {
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	Go       string    `json:"go"`
	OS       string    `json:"os"`
	CPUs     int       `json:"cpus"`
	Settings Options   `json:"settings"`
	Rows     []Row     `json:"rows"`
	// LoadAverage is the machine's one-minute load average at the start
	// and at the end of the run: others' jobs share its cores.
	LoadAverage [2]float64 `json:"load_average"`
}

func newReport(o Options) *Report {
	return &Report{Started: time.Now().UTC(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		CPUs: runtime.NumCPU(), Settings: o, LoadAverage: [2]float64{LoadAverage(), 0}}
}

func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	r := a / b
	return &r
}

func met(ok bool) *bool { return &ok }

// Markdown renders the report as the table of bench/README.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ca-a2a benchmark results\n\n")
	fmt.Fprintf(&b, "Run %s, %s, %s, %d CPUs, took %s; load average %.2f at the start, %.2f at the end. Load: %d in flight, %s per target in %d rounds, keep-alive HTTP/1.1 over mTLS on 127.0.0.1.\n\n",
		r.Started.Format(time.RFC3339), r.Go, r.OS, r.CPUs, r.Elapsed, r.LoadAverage[0], r.LoadAverage[1], r.Settings.Concurrency, r.Settings.Duration, r.Settings.Rounds)
	b.WriteString("| # | measurement | ratio | of | target | met | figures |\n|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		rat, ok := "—", ""
		if row.Ratio != nil {
			rat = fmt.Sprintf("%.3f", *row.Ratio)
		}
		if row.Met != nil {
			ok = map[bool]string{true: "yes", false: "**no**"}[*row.Met]
		}
		detail := row.Detail
		switch {
		case row.Error != "":
			detail, ok = "error: "+row.Error, "—"
		case row.Skipped != "":
			detail, ok = "skipped: "+row.Skipped, "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", row.ID, row.Title, rat, row.Of, row.Target, ok, cell(detail))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

// Write writes results.md and results.json into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644)
}
