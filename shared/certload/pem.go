package certload

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// parseCertificates returns every CERTIFICATE block of data, in order. Other
// block types are an error: a private key pasted into a certificate variable
// must not go unnoticed.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, errors.New("malformed certificate")
		}
		certs = append(certs, c)
	}
	if strings.TrimSpace(string(data)) != "" && len(certs) == 0 {
		return nil, errors.New("not PEM")
	}
	return certs, nil
}

// privateKeyBlock returns the single private key block of data, refusing
// encrypted keys with a clear error.
func privateKeyBlock(data []byte, origin string) (*pem.Block, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%w in %s", ErrNoKey, origin)
		}
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY", block.Headers["Proc-Type"] != "" && strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, fmt.Errorf("%w (%s)", ErrEncryptedKey, origin)
		case block.Type == "PRIVATE KEY", block.Type == "RSA PRIVATE KEY", block.Type == "EC PRIVATE KEY":
			return block, nil
		case block.Type == "EC PARAMETERS":
			continue // openssl ecparam -genkey writes these before the key
		default:
			return nil, fmt.Errorf("%w in %s: unexpected PEM block %q", ErrNoKey, origin, block.Type)
		}
	}
}

func isKeyParseError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to parse private key") || strings.Contains(msg, "unknown private key type")
}
