package main

import (
	"fmt"
	"os"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// checkKeptCA refuses, before anything is written, a CA that certgen would
// reuse but that is outside its validity window: every leaf it signed would
// fail verification. A CA certgen cannot parse is left to certgen.Generate,
// which reports it in its own words.
func checkKeptCA(o certgen.Options) error {
	if !caKept(o) {
		return nil
	}
	certPath, _ := certgen.CAPaths(o.Dir)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil
	}
	cas, err := certload.ParseCAs(data, certPath)
	if err != nil {
		return nil
	}
	ca := cas[0]
	switch {
	case o.Now.After(ca.NotAfter):
		return fmt.Errorf("%s expired on %s; create a new CA with --force-ca", certPath, ca.NotAfter.UTC().Format(time.DateOnly))
	case o.Now.Before(ca.NotBefore):
		return fmt.Errorf("%s is not valid before %s; check the clock or create a new CA with --force-ca", certPath, ca.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkLeaves loads every selected agent's files the way an agent does at
// start-up (certload.Parse: key matches certificate, chain to the CA,
// validity, serverAuth and clientAuth) and checks that the certificate names
// that agent. Kept files are never re-issued without --force, so this is
// where a stale one (expired, from a previous CA, someone else's) surfaces
// instead of at the agent's start-up.
func checkLeaves(o certgen.Options) error {
	caPath, _ := certgen.CAPaths(o.Dir)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return err
	}
	for _, name := range o.Agents {
		certPath, keyPath := certgen.LeafPaths(o.Dir, name)
		if err := checkLeaf(name, certPath, keyPath, caPath, caPEM, o.Now); err != nil {
			return fmt.Errorf("%w; re-issue it with --force --agents %s", err, name)
		}
	}
	return nil
}

func checkLeaf(name, certPath, keyPath, caPath string, caPEM []byte, now time.Time) error {
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
	return nil
}
