package certload_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/poll"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// withSerial gives a leaf a chosen serial, so that two CAs can issue the
// same one.
func withSerial(n int64) pki.LeafOption {
	return func(c *x509.Certificate) { c.SerialNumber = big.NewInt(n) }
}

// TestSameNameCAs: during a rotation both CAs carry one name (certgen
// keeps it), so a CRL must apply to the certificates of the CA that signed
// it only, told apart by key identifier.
func TestSameNameCAs(t *testing.T) {
	cur := pki.NewCA(t, "CA A2A Root CA")
	next := pki.NewCA(t, "CA A2A Root CA")
	ofCur := cur.Issue(t, "lambda", withSerial(7))
	ofNext := next.Issue(t, "lambda", withSerial(7))
	cas := []*x509.Certificate{cur.Cert, next.Cert}
	for name, tc := range map[string]struct {
		crl               []byte
		curRevoked, nextR bool
	}{
		"next CA revokes serial 7":    {crlOf(t, next.Cert, next.Key, 1, []*big.Int{big.NewInt(7)}, nil), false, true},
		"current CA revokes serial 7": {crlOf(t, cur.Cert, cur.Key, 1, []*big.Int{big.NewInt(7)}, nil), true, false},
		"both lists, one revocation": {join(crlOf(t, cur.Cert, cur.Key, 1, nil, nil), crlOf(t, next.Cert, next.Key, 2, []*big.Int{big.NewInt(7)}, nil)),
			false, true},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := certload.ParseCRLs(tc.crl, "crl.pem", cas)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.IsRevoked(ofCur.Cert); got != tc.curRevoked {
				t.Errorf("leaf of the current CA: revoked %v, want %v", got, tc.curRevoked)
			}
			if got := r.IsRevoked(ofNext.Cert); got != tc.nextR {
				t.Errorf("leaf of the next CA: revoked %v, want %v", got, tc.nextR)
			}
		})
	}
}

func TestCheckPeer(t *testing.T) {
	cur := pki.NewCA(t, "CA A2A Root CA")
	retired := pki.NewCA(t, "CA A2A Root CA") // same name, its key no longer trusted
	ok := cur.Issue(t, "lambda")
	revoked := cur.Issue(t, "extractor")
	now := time.Now()
	expired := cur.Issue(t, "lambda", pki.Validity(now.Add(-2*time.Hour), now.Add(-time.Minute)))
	early := cur.Issue(t, "lambda", pki.Validity(now.Add(time.Hour), now.Add(2*time.Hour)))
	ofRetired := retired.Issue(t, "lambda")
	forged := forgedLeaf(t, cur, retired)
	b := static(t, cur.Issue(t, "orchestrator"), cur.PEM, certload.UsageServerAndClient).Bundle()
	revs, err := certload.ParseCRLs(crlOf(t, cur.Cert, cur.Key, 1, []*big.Int{revoked.Cert.SerialNumber}, nil), "crl.pem", b.CACerts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain []*x509.Certificate
		revs  *certload.Revocations
		want  error
	}{
		{"valid", []*x509.Certificate{ok.Cert}, revs, nil},
		{"valid, no CRL", []*x509.Certificate{ok.Cert}, nil, nil},
		{"revoked", []*x509.Certificate{revoked.Cert}, revs, certload.ErrRevoked},
		{"revoked, but no CRL configured", []*x509.Certificate{revoked.Cert}, nil, nil},
		{"expired since the handshake", []*x509.Certificate{expired.Cert}, revs, certload.ErrExpired},
		{"not valid yet", []*x509.Certificate{early.Cert}, revs, certload.ErrNotYetValid},
		{"issued by a CA no longer in the bundle", []*x509.Certificate{ofRetired.Cert}, revs, certload.ErrUntrusted},
		// The rest of the chain is the peer's word: a copy of the retired
		// CA sent along does not make its leaf trusted again.
		{"issued by a retired CA it sends along", []*x509.Certificate{ofRetired.Cert, retired.Cert}, revs, certload.ErrUntrusted},
		{"issued by a retired CA, the current one sent along", []*x509.Certificate{ofRetired.Cert, cur.Cert}, revs, certload.ErrUntrusted},
		{"the current CA's name and key id, another CA's signature", []*x509.Certificate{forged}, revs, certload.ErrUntrusted},
		{"valid, any chain sent along", []*x509.Certificate{ok.Cert, retired.Cert}, revs, nil},
		{"no certificate", nil, revs, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := certload.CheckPeer(tc.chain, b, tc.revs, now); err != tc.want {
				t.Fatalf("CheckPeer = %v, want %v", err, tc.want)
			}
		})
	}
	// Every request of a connection runs it: it must not allocate.
	chain := []*x509.Certificate{ok.Cert}
	if n := testing.AllocsPerRun(100, func() { _ = certload.CheckPeer(chain, b, revs, now) }); n != 0 {
		t.Errorf("CheckPeer allocates %v times per call", n)
	}
	uchain := []*x509.Certificate{ofRetired.Cert, retired.Cert}
	if n := testing.AllocsPerRun(100, func() { _ = certload.CheckPeer(uchain, b, revs, now) }); n != 0 {
		t.Errorf("CheckPeer of an untrusted certificate allocates %v times per call", n)
	}
	rchain := []*x509.Certificate{revoked.Cert}
	if n := testing.AllocsPerRun(100, func() { _ = certload.CheckPeer(rchain, b, revs, now) }); n != 0 {
		t.Errorf("CheckPeer of a revoked certificate allocates %v times per call", n)
	}
}

// forgedLeaf is a leaf that names cur as its issuer, by name and key id,
// but is signed by other's key.
func forgedLeaf(t *testing.T, cur, other *pki.CA) *x509.Certificate {
	t.Helper()
	parent := *other.Cert
	parent.SubjectKeyId = cur.Cert.SubjectKeyId // what the leaf's authority key id is copied from
	leaf := other.Issue(t, "lambda")
	tmpl := *leaf.Cert
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &parent, leaf.Key.Public(), other.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.AuthorityKeyId, cur.Cert.SubjectKeyId) || !bytes.Equal(c.RawIssuer, cur.Cert.RawSubject) {
		t.Fatal("the forged leaf does not name the current CA")
	}
	return c
}

// TestCheckPeerSignedMemo: the remembered answer belongs to the bundle
// whose CAs gave it; a rotated bundle asks again.
func TestCheckPeerSignedMemo(t *testing.T) {
	oldCA, newCA := pki.NewCA(t, "CA A2A Root CA"), pki.NewCA(t, "CA A2A Root CA")
	leaf := oldCA.Issue(t, "lambda")
	both := static(t, newCA.Issue(t, "orchestrator"), join(oldCA.PEM, newCA.PEM), certload.UsageServerAndClient).Bundle()
	retired := static(t, newCA.Issue(t, "orchestrator"), newCA.PEM, certload.UsageServerAndClient).Bundle()
	now := time.Now()
	for i := range 2 { // the second round answers from the memo
		if err := certload.CheckPeer([]*x509.Certificate{leaf.Cert}, both, nil, now); err != nil {
			t.Fatalf("round %d, both CAs trusted: %v", i, err)
		}
		if err := certload.CheckPeer([]*x509.Certificate{leaf.Cert, oldCA.Cert}, retired, nil, now); err != certload.ErrUntrusted {
			t.Fatalf("round %d, old CA retired: %v", i, err)
		}
	}
	// More leaves than the memo holds: every answer stays right.
	for i := range 300 {
		ca := oldCA
		if i%2 == 1 {
			ca = newCA
		}
		l := ca.Issue(t, "lambda")
		want := error(nil)
		if ca == oldCA {
			want = certload.ErrUntrusted
		}
		for range 2 {
			if err := certload.CheckPeer([]*x509.Certificate{l.Cert}, retired, nil, now); err != want {
				t.Fatalf("leaf %d: %v, want %v", i, err, want)
			}
		}
	}
}

func BenchmarkCheckPeer(b *testing.B) {
	ca := pki.NewCA(b, "CA A2A Root CA")
	leaf := ca.Issue(b, "lambda")
	var serials []*big.Int
	for i := range 1000 {
		serials = append(serials, new(big.Int).Lsh(big.NewInt(int64(i+1)), 64))
	}
	o := ca.Issue(b, "orchestrator")
	src, err := certload.FromPEM(o.CertPEM, o.KeyPEM, ca.PEM, origin(), certload.Options{})
	if err != nil {
		b.Fatal(err)
	}
	revs, err := certload.ParseCRLs(crlOf(b, ca.Cert, ca.Key, 1, serials, nil), "crl.pem", src.Bundle().CACerts)
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{leaf.Cert}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := certload.CheckPeer(chain, src.Bundle(), revs, now); err != nil {
			b.Fatal(err)
		}
	}
}

// crlFiles is a CA bundle and a CRL on disk, watched as an agent does.
type crlFiles struct {
	dir, certPath, keyPath, caPath, crlPath string
}

func newCRLFiles(t *testing.T, ca *pki.CA, crl []byte) crlFiles {
	t.Helper()
	d := t.TempDir()
	f := crlFiles{dir: d, crlPath: filepath.Join(d, "crl.pem")}
	f.certPath, f.keyPath, f.caPath = pki.WriteFiles(t, d, ca.Issue(t, "orchestrator"), ca.PEM)
	writeAtomic(t, f.crlPath, crl)
	return f
}

func TestCRLWatcher(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	next := pki.NewCA(t, "CA A2A Root CA")
	impostor := pki.NewCA(t, "CA A2A Root CA") // the trusted name, another key
	lambda := ca.Issue(t, "lambda")
	extractor := ca.Issue(t, "extractor")
	validator := next.Issue(t, "validator")
	f := newCRLFiles(t, ca, crlOf(t, ca.Cert, ca.Key, 1, nil, nil))
	files, err := certload.WatchFiles(f.certPath, f.keyPath, f.caPath, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	logs := &syncbuf.Buffer{}
	w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{Path: f.crlPath}, files, certload.Options{PollInterval: time.Hour,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	revoked := func(l *pki.Leaf) bool { return w.Revocations().IsRevoked(l.Cert) }
	if revoked(lambda) || revoked(extractor) {
		t.Fatal("an empty CRL revokes")
	}
	first := w.Revocations()
	if changed, err := w.Reload(); changed || err != nil {
		t.Fatalf("Reload without a change: %v %v", changed, err)
	}
	if w.Revocations() != first {
		t.Fatal("an unchanged file published a new list")
	}

	steps := []struct {
		name    string
		write   func()
		want    error // of Reload
		revoked map[*pki.Leaf]bool
	}{
		{"lambda revoked", func() {
			writeAtomic(t, f.crlPath, crlOf(t, ca.Cert, ca.Key, 2, []*big.Int{lambda.Cert.SerialNumber}, nil))
		}, nil, map[*pki.Leaf]bool{lambda: true, extractor: false}},
		{"an older list of the CA (a stale copy published again) does not un-revoke", func() {
			writeAtomic(t, f.crlPath, crlOf(t, ca.Cert, ca.Key, 1, nil, nil))
		}, nil, map[*pki.Leaf]bool{lambda: true, extractor: false}},
		{"a list signed by an impostor of the CA's name is refused, the previous one kept", func() {
			writeAtomic(t, f.crlPath, crlOf(t, impostor.Cert, impostor.Key, 3, []*big.Int{extractor.Cert.SerialNumber}, nil))
		}, certload.ErrUntrustedCRL, map[*pki.Leaf]bool{lambda: true, extractor: false}},
		{"a truncated file is refused, the previous list kept", func() {
			writeAtomic(t, f.crlPath, []byte("-----BEGIN X509 CRL-----\nMIIB"))
		}, certload.ErrNoCRL, map[*pki.Leaf]bool{lambda: true}},
		{"a list of the next CA before the bundle holds it is refused", func() {
			writeAtomic(t, f.crlPath, join(crlOf(t, ca.Cert, ca.Key, 3, []*big.Int{lambda.Cert.SerialNumber}, nil),
				crlOf(t, next.Cert, next.Key, 1, []*big.Int{validator.Cert.SerialNumber}, nil)))
		}, certload.ErrUntrustedCRL, map[*pki.Leaf]bool{lambda: true, validator: false}},
		{"then accepted once the bundle holds the next CA, with no change to the CRL file", func() {
			writeAtomic(t, f.caPath, join(ca.PEM, next.PEM))
			if changed, err := files.Reload(); !changed || err != nil {
				t.Fatalf("bundle reload: %v %v", changed, err)
			}
		}, nil, map[*pki.Leaf]bool{lambda: true, validator: true, extractor: false}},
		{"a list that leaves out a CA still trusted keeps that CA's previous list", func() {
			writeAtomic(t, f.crlPath, crlOf(t, ca.Cert, ca.Key, 4, []*big.Int{lambda.Cert.SerialNumber, extractor.Cert.SerialNumber}, nil))
		}, nil, map[*pki.Leaf]bool{lambda: true, validator: true, extractor: true}},
		{"once the CA leaves the bundle, its list goes too", func() {
			writeAtomic(t, f.caPath, ca.PEM)
			if changed, err := files.Reload(); !changed || err != nil {
				t.Fatalf("bundle reload: %v %v", changed, err)
			}
		}, nil, map[*pki.Leaf]bool{lambda: true, validator: false, extractor: true}},
		{"the file disappears: the list stays", func() {
			if err := os.Remove(f.crlPath); err != nil {
				t.Fatal(err)
			}
		}, os.ErrNotExist, map[*pki.Leaf]bool{lambda: true, extractor: true}},
	}
	for _, st := range steps {
		before := w.Revocations()
		st.write()
		changed, err := w.Reload()
		if st.want == nil && (err != nil || !changed) || st.want != nil && (!errors.Is(err, st.want) || changed) {
			t.Fatalf("%s: Reload = %v, %v; want error %v", st.name, changed, err, st.want)
		}
		if err != nil {
			if w.Revocations() != before {
				t.Fatalf("%s: a refused list replaced the one in force", st.name)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "certload: ") || !strings.Contains(msg, f.crlPath) || strings.Contains(msg, "BEGIN") {
				t.Errorf("%s: message %q must name the file, never its contents", st.name, msg)
			}
		}
		for l, want := range st.revoked {
			if got := revoked(l); got != want {
				t.Errorf("%s: %s revoked %v, want %v", st.name, l.Cert.Subject.CommonName, got, want)
			}
		}
	}
	// The list kept for the CA the file left out is said in the log, once.
	if n := strings.Count(logs.String(), `"msg":"CRL leaves out the list of a trusted CA; its previous list stays in force"`); n != 1 {
		t.Errorf("%d warnings of a list left out, want 1:\n%s", n, logs.String())
	}
	// So is the newer list kept against an older one.
	if n := strings.Count(logs.String(), `"msg":"CRL holds an older list of a CA than the one in force; the newer list stays in force"`); n != 1 {
		t.Errorf("%d errors of an older list, want 1:\n%s", n, logs.String())
	}
}

// TestCRLWatcherPolls: the watcher finds a new list by itself, and says
// clearly in the log why it refuses one.
func TestCRLWatcherPolls(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	rogue := pki.NewCA(t, "Rogue CA")
	lambda := ca.Issue(t, "lambda")
	f := newCRLFiles(t, ca, crlOf(t, ca.Cert, ca.Key, 1, nil, nil))
	src := static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageServerAndClient)
	logs := &syncbuf.Buffer{}
	w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{Path: f.crlPath}, src, certload.Options{PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAtomic(t, f.crlPath, crlOf(t, ca.Cert, ca.Key, 2, []*big.Int{lambda.Cert.SerialNumber}, nil))
	poll.Until(t, "the new list", func() bool { return w.Revocations().IsRevoked(lambda.Cert) })
	writeAtomic(t, f.crlPath, crlOf(t, rogue.Cert, rogue.Key, 1, nil, nil))
	poll.Until(t, "the refusal in the log", func() bool {
		return strings.Contains(logs.String(), `"msg":"CRL refused; the previous CRL stays in force"`)
	})
	line := lineWith(logs.String(), "CRL refused")
	for _, want := range []string{`"level":"ERROR"`, f.crlPath, "not signed by a trusted CA", `Rogue CA`} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal line %s lacks %q", line, want)
		}
	}
	if !w.Revocations().IsRevoked(lambda.Cert) {
		t.Fatal("the refused list replaced the previous one")
	}
	// Several more polls: the same bad file is reported once.
	polled := certload.Polls(w)
	poll.Until(t, "three more polls", func() bool { return certload.Polls(w) >= polled+3 })
	if n := strings.Count(logs.String(), "CRL refused"); n != 1 {
		t.Errorf("the same refused file was reported %d times", n)
	}
}

func lineWith(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestLoadCRL(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	rogue := pki.NewCA(t, "Rogue CA")
	src := static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageServerAndClient)
	good := crlOf(t, ca.Cert, ca.Key, 1, nil, nil)
	f := newCRLFiles(t, ca, good)

	w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{}, src, certload.Options{})
	if w != nil || err != nil {
		t.Fatalf("no CRL configured: %v %v", w, err)
	}
	if w.Revocations() != nil || w.Close() != nil {
		t.Fatal("a nil watcher must revoke nothing and close")
	}

	// One source only: which of two would be in force is not guessed.
	for _, cfg := range []certload.CRLConfig{
		{Path: f.crlPath, PEM: string(good)},
		{Path: f.crlPath, SecretID: "ca-a2a/crl"},
		{PEM: string(good), SecretID: "ca-a2a/crl"},
	} {
		w, err := certload.LoadCRL(t.Context(), cfg, src, certload.Options{})
		if w != nil || err == nil || !strings.Contains(err.Error(), "set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID") {
			t.Fatalf("LoadCRL(%+v) = %v, %v; want a refusal of two sources", cfg, w, err)
		}
	}

	for name, tc := range map[string]struct {
		cfg  certload.CRLConfig
		want error
		in   string
	}{
		"the secret's placeholder": {certload.CRLConfig{PEM: "x7Rq...random placeholder"}, certload.ErrNoCRL, "MTLS_CRL"},
		"a certificate":            {certload.CRLConfig{PEM: string(ca.PEM)}, certload.ErrMalformedCRL, "MTLS_CRL"},
		"another CA's list":        {certload.CRLConfig{PEM: string(crlOf(t, rogue.Cert, rogue.Key, 1, nil, nil))}, certload.ErrUntrustedCRL, "MTLS_CRL"},
		"a missing file":           {certload.CRLConfig{Path: filepath.Join(f.dir, "missing.pem")}, os.ErrNotExist, "missing.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := certload.LoadCRL(t.Context(), tc.cfg, src, certload.Options{})
			if w != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.in) {
				t.Fatalf("LoadCRL = %v, %v; want %v naming %s", w, err, tc.want, tc.in)
			}
		})
	}

	// A stale list is applied, with a warning.
	lambda := ca.Issue(t, "lambda")
	stale := crlOf(t, ca.Cert, ca.Key, 1, []*big.Int{lambda.Cert.SerialNumber}, func(l *x509.RevocationList) {
		l.ThisUpdate, l.NextUpdate = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	logs := &syncbuf.Buffer{}
	w, err = certload.LoadCRL(t.Context(), certload.CRLConfig{PEM: string(stale)}, src, certload.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Revocations().IsRevoked(lambda.Cert) {
		t.Error("a stale list is not applied")
	}
	if line := lineWith(logs.String(), "CRL is stale"); !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, "next_update") {
		t.Errorf("no stale warning: %s", logs.String())
	}
}

// TestRevokedPeersAtTheHandshake: both ends refuse a revoked peer when
// they have the CRL.
func TestRevokedPeersAtTheHandshake(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	serverLeaf := ca.Issue(t, "orchestrator")
	revokedClient := ca.Issue(t, "lambda")
	goodClient := ca.Issue(t, "lambda")
	revs, err := certload.ParseCRLs(crlOf(t, ca.Cert, ca.Key, 1, []*big.Int{revokedClient.Cert.SerialNumber, serverLeaf.Cert.SerialNumber}, nil), "crl.pem", []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	crl := fixedCRL{revs}
	server := static(t, serverLeaf, ca.PEM, certload.UsageServerAndClient)

	// Server side: the server's own certificate is not checked against
	// its CRL (it is the client's business), only the client's.
	srv, _ := startServer(t, server, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true, CRL: crl})
	if err := get(t, certload.ClientConfig(static(t, goodClient, ca.PEM, certload.UsageClient), orchestrator, certload.ClientOptions{}), srv.URL); err != nil {
		t.Fatalf("unrevoked client: %v", err)
	}
	if err := get(t, rawClient(revokedClient), srv.URL); err == nil {
		t.Fatal("revoked client accepted")
	}
	// Client side: a client with the CRL refuses the revoked server.
	err = get(t, certload.ClientConfig(static(t, goodClient, ca.PEM, certload.UsageClient), orchestrator, certload.ClientOptions{CRL: crl}), srv.URL)
	if !errors.Is(err, certload.ErrRevoked) && (err == nil || !strings.Contains(err.Error(), "revoked")) {
		t.Fatalf("client with the CRL reached a revoked server: %v", err)
	}
}

type fixedCRL struct{ r *certload.Revocations }

func (f fixedCRL) Revocations() *certload.Revocations { return f.r }
