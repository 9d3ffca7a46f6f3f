package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// checkKeptCA refuses, before anything is written, a CA that certgen would
// reuse (the current one, and the next one during a rotation) but that is
// outside its validity window: every leaf it signed would fail
// verification. A CA certgen cannot parse is left to certgen.Generate,
// which reports it in its own words.
func checkKeptCA(o certgen.Options) error {
	for _, certPath := range keptCAs(o) {
		data, err := os.ReadFile(certPath)
		if err != nil {
			continue
		}
		cas, err := certload.ParseCAs(data, certPath)
		if err != nil {
			continue
		}
		ca := cas[0]
		switch {
		case o.Now.After(ca.NotAfter):
			return fmt.Errorf("%s expired on %s; create a new CA with --force-ca", certPath, ca.NotAfter.UTC().Format(time.DateOnly))
		case o.Now.Before(ca.NotBefore):
			return fmt.Errorf("%s is not valid before %s; check the clock or create a new CA with --force-ca", certPath, ca.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// checkLeaves loads every selected agent's files the way an agent does at
// start-up (certload.Parse against the bundle: key matches certificate,
// chain to a CA of the bundle, validity, serverAuth and clientAuth), checks
// that the certificate names that agent and, when there is a CRL file, that
// it is not revoked. Kept files are never re-issued without --force, so
// this is where a stale one (expired, from a previous CA, someone else's,
// revoked) surfaces instead of at the agent's start-up.
func checkLeaves(o certgen.Options) error {
	caPath := certgen.BundlePath(o.Dir)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return err
	}
	revs, err := readRevocations(o.Dir, caPath, caPEM)
	if err != nil {
		return err
	}
	for _, name := range o.Agents {
		certPath, keyPath := certgen.LeafPaths(o.Dir, name)
		if err := checkLeaf(name, certPath, keyPath, caPath, caPEM, revs, o.Now); err != nil {
			return fmt.Errorf("%w; re-issue it with --force --agents %s", err, name)
		}
	}
	return nil
}

// readRevocations verifies the CRL file against the bundle, as an agent
// does; nil without a CRL file.
func readRevocations(dir, caPath string, caPEM []byte) (*certload.Revocations, error) {
	crlPath := certgen.CRLPath(dir)
	data, err := os.ReadFile(crlPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cas, err := certload.ParseCAs(caPEM, caPath)
	if err != nil {
		return nil, err
	}
	return certload.ParseCRLs(data, crlPath, cas)
}

func checkLeaf(name, certPath, keyPath, caPath string, caPEM []byte, revs *certload.Revocations, now time.Time) error {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	b, err := certload.Parse(certPEM, keyPEM, caPEM, certload.Origin{Cert: certPath, Key: keyPath, CA: caPath}, certload.UsageServerAndClient, now)
	if err != nil {
		return err
	}
	if id, err := agentapi.Identity(b.Leaf()); err != nil || id != name {
		return fmt.Errorf("%s does not name %s (want the single DNS SAN %s)", certPath, name, agentapi.DNSName(name))
	}
	if revs.IsRevoked(b.Leaf()) {
		return fmt.Errorf("%s is revoked (serial %s)", certPath, certgen.SerialHex(b.Leaf().SerialNumber))
	}
	return nil
}
