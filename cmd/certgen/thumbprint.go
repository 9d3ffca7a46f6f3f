package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/ca-a2a/ca-a2a/shared/binding"
)

func thumbprintCmd(args []string) error {
	if len(args) != 1 {
		return usageError{"usage: certgen thumbprint FILE"}
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM certificate", args[0])
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: malformed certificate", args[0])
	}
	fmt.Println(binding.Thumbprint(cert))
	return nil
}
