package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// maxCRLDays caps --crl-days: a CRL that stays current for longer than a
// year is one nobody re-signs.
const maxCRLDays = 366

// serialHex is a certificate serial as openssl prints it: hex digits,
// optionally 0x-prefixed or colon-separated; at most 20 octets (RFC 5280).
var serialHex = regexp.MustCompile(`^(0[xX])?[0-9A-Fa-f]{1,40}$`)

// revokeCmd adds one agent's certificate, or a serial, to its CA's CRL.
func revokeCmd(args []string, stdout io.Writer) error {
	o := certgen.RevokeOptions{Out: lineWriter(stdout)}
	fs := flag.NewFlagSet("certgen revoke", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	serial := fs.String("serial", "", "revoke the certificate with this serial (hex, as openssl x509 -serial prints it) instead of an agent's current one")
	reason := fs.String("reason", "unspecified", "revocation reason: "+strings.Join(slices.Sorted(maps.Keys(certgen.Reasons)), ", "))
	fs.IntVar(&o.Days, "crl-days", certgen.DefaultCRLDays, "days until the CRL's nextUpdate")
	fs.SetOutput(io.Discard)
	// NAME may come before or after the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.Name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return errHelp
		}
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if o.Name == "" && len(rest) > 0 {
		o.Name, rest = rest[0], rest[1:]
		if err := fs.Parse(rest); err != nil {
			return usageError{err.Error()}
		}
		rest = fs.Args()
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", rest[0])}
	}
	switch {
	case o.Name == "" && *serial == "":
		return usageError{"revoke needs an agent NAME or --serial HEX"}
	case o.Name != "" && *serial != "":
		return usageError{"give an agent NAME or --serial HEX, not both"}
	case o.Name != "" && !agentName.MatchString(o.Name):
		return usageError{fmt.Sprintf("invalid agent name %q", o.Name)}
	case o.Dir == "":
		return usageError{"--certs-dir must not be empty"}
	case o.Days < 1 || o.Days > maxCRLDays:
		return usageError{fmt.Sprintf("--crl-days must be between 1 and %d", maxCRLDays)}
	}
	if *serial != "" {
		n, err := parseSerial(*serial)
		if err != nil {
			return err
		}
		o.Serial = n
	}
	code, ok := certgen.Reasons[*reason]
	if !ok {
		return usageError{fmt.Sprintf("--reason must be one of %s, not %q", strings.Join(slices.Sorted(maps.Keys(certgen.Reasons)), ", "), *reason)}
	}
	o.Reason = code
	o.Now = time.Now()
	return certgen.Revoke(o)
}

// parseSerial reads a serial as openssl prints it (3A7F..., 3a:7f:...,
// 0x3a7f...).
func parseSerial(s string) (*big.Int, error) {
	s = strings.ReplaceAll(s, ":", "")
	if !serialHex.MatchString(s) {
		return nil, usageError{fmt.Sprintf("--serial %q: want up to 40 hex digits", s)}
	}
	n, _ := new(big.Int).SetString(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16)
	if n.Sign() == 0 {
		return nil, usageError{"--serial must not be zero"}
	}
	return n, nil
}

// crlCmd re-signs the CRL file, or creates an empty one.
func crlCmd(args []string, stdout io.Writer) error {
	o := certgen.CRLOptions{Out: lineWriter(stdout)}
	fs := flag.NewFlagSet("certgen crl", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.IntVar(&o.Days, "crl-days", certgen.DefaultCRLDays, "days until the CRL's nextUpdate")
	if err := parseCommand(fs, args, stdout); err != nil {
		return err
	}
	if o.Dir == "" {
		return usageError{"--certs-dir must not be empty"}
	}
	if o.Days < 1 || o.Days > maxCRLDays {
		return usageError{fmt.Sprintf("--crl-days must be between 1 and %d", maxCRLDays)}
	}
	o.Now = time.Now()
	return certgen.RefreshCRL(o)
}
