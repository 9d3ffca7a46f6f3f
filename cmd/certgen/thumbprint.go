package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/ca-a2a/ca-a2a/shared/binding"
)

// thumbprintCmd prints the x5t#S256 of the first certificate in a PEM file.
func thumbprintCmd(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, synopsis)
		return errHelp
	}
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		return usageError{"usage: certgen thumbprint FILE"}
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return fmt.Errorf("%s: no PEM certificate", args[0])
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: malformed certificate: %w", args[0], err)
		}
		_, err = fmt.Fprintln(stdout, binding.Thumbprint(cert))
		return err
	}
}
