// Package samples holds the small, valid documents the tests and the demo
// use: a two-page invoice PDF with real text and a transactions CSV.
package samples

import "github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"

// PDF returns a PDF with one page per string (lines separated by "\n").
func PDF(pages ...string) []byte { return pdftest.Build(pages...) }

// Invoice is a two-page sample invoice.
func Invoice() []byte {
	return PDF(
		"INVOICE 2026-0042\nCA A2A Consulting, 12 rue de la Paix, Paris\nBill to: Example Industries\nDate: 2026-11-25",
		"Item: Security review, 3 days, 4500.00 EUR\nItem: mTLS rollout, 2 days, 3000.00 EUR\nTotal: 7500.00 EUR\nPayment due within 30 days.",
	)
}

// TransactionsCSV is a sample CSV with a header and clean rows.
func TransactionsCSV() []byte {
	return []byte("date;account;amount;currency\n2026-11-01;FR7630001007941234567890185;1250.00;EUR\n2026-11-02;FR7630004000031234567890143;-89.90;EUR\n2026-11-03;FR7610107001011234567890129;4200.00;EUR\n")
}
