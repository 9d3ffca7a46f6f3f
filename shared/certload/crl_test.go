package certload_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// crlOf signs a CRL listing serials with issuer's key; edit adjusts the
// template before signing.
func crlOf(t testing.TB, issuer *x509.Certificate, key crypto.Signer, number int64, serials []*big.Int, edit func(*x509.RevocationList)) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(30 * 24 * time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-time.Minute)})
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseCRLs(t *testing.T) {
	caA := pki.NewCA(t, "CA A2A Root CA")
	caB := pki.NewCA(t, "CA A2A Root CA G2")
	rogue := pki.NewCA(t, "Rogue CA")
	impostor := pki.NewCA(t, "CA A2A Root CA") // same name as caA, other key
	revokedA := caA.Issue(t, "lambda")
	keptA := caA.Issue(t, "extractor")
	revokedB := caB.Issue(t, "validator")
	keptB := caB.Issue(t, "archivist")
	trusted := []*x509.Certificate{caA.Cert, caB.Cert}

	crlA := crlOf(t, caA.Cert, caA.Key, 3, []*big.Int{revokedA.Cert.SerialNumber}, nil)
	crlB := crlOf(t, caB.Cert, caB.Key, 1, []*big.Int{revokedB.Cert.SerialNumber}, nil)
	// caA's name and key identifier, another key: the signature decides.
	forged := crlOf(t, &x509.Certificate{RawSubject: caA.Cert.RawSubject, SubjectKeyId: caA.Cert.SubjectKeyId, KeyUsage: x509.KeyUsageCRLSign}, impostor.Key, 4, nil, nil)
	// caA's key under another name: the name decides which CA is asked.
	renamed := crlOf(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Not The CA"}, SubjectKeyId: caA.Cert.SubjectKeyId, KeyUsage: x509.KeyUsageCRLSign}, caA.Key, 4, nil, nil)
	critical := crlOf(t, caA.Cert, caA.Key, 5, nil, func(l *x509.RevocationList) {
		// deltaCRLIndicator: a delta list read as complete would un-revoke.
		l.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 1}}}
	})
	criticalEntry := crlOf(t, caA.Cert, caA.Key, 5, nil, func(l *x509.RevocationList) {
		// certificateIssuer: the serial would name another CA's certificate.
		l.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: big.NewInt(7), RevocationTime: time.Now(),
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 29}, Critical: true, Value: []byte{0x30, 0}}}}}
	})
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte("not DER")})
	many := bytes.Repeat(crlA, 17)

	type check struct {
		leaf    *pki.Leaf
		revoked bool
	}
	tests := []struct {
		name    string
		data    []byte
		cas     []*x509.Certificate
		want    error
		checks  []check
		numCRLs int
	}{
		{"one CA", crlA, trusted[:1], nil, []check{{revokedA, true}, {keptA, false}, {revokedB, false}}, 1},
		{"overlap: one CRL per CA", join(crlA, crlB), trusted, nil,
			[]check{{revokedA, true}, {keptA, false}, {revokedB, true}, {keptB, false}}, 2},
		{"overlap: a CRL for one CA only", crlB, trusted, nil, []check{{revokedA, false}, {revokedB, true}}, 1},
		{"text around the blocks", join([]byte("# written by certgen\n"), crlA, []byte("\n")), trusted, nil, []check{{revokedA, true}}, 1},
		{"CRL of an untrusted CA", crlOf(t, rogue.Cert, rogue.Key, 1, nil, nil), trusted, certload.ErrUntrustedCRL, nil, 0},
		{"an untrusted CRL among trusted ones", join(crlA, crlOf(t, rogue.Cert, rogue.Key, 1, nil, nil)), trusted, certload.ErrUntrustedCRL, nil, 0},
		{"CRL of the CA after it was retired", crlA, trusted[1:], certload.ErrUntrustedCRL, nil, 0},
		{"trusted name, other key", forged, trusted, certload.ErrUntrustedCRL, nil, 0},
		{"trusted key, other name", renamed, trusted, certload.ErrUntrustedCRL, nil, 0},
		{"no trusted CA at all", crlA, nil, certload.ErrUntrustedCRL, nil, 0},
		{"two CRLs of one CA", join(crlA, crlOf(t, caA.Cert, caA.Key, 4, nil, nil)), trusted, certload.ErrMalformedCRL, nil, 0},
		{"critical extension", critical, trusted, certload.ErrMalformedCRL, nil, 0},
		{"critical entry extension", criticalEntry, trusted, certload.ErrMalformedCRL, nil, 0},
		{"corrupt DER", corrupt, trusted, certload.ErrMalformedCRL, nil, 0},
		{"a certificate instead", caA.PEM, trusted, certload.ErrMalformedCRL, nil, 0},
		{"a certificate after a CRL", join(crlA, caA.PEM), trusted, certload.ErrMalformedCRL, nil, 0},
		{"too many CRLs", many, trusted, certload.ErrMalformedCRL, nil, 0},
		{"too large", join(crlA, bytes.Repeat([]byte{'\n'}, certload.MaxCRLBytes)), trusted, certload.ErrMalformedCRL, nil, 0},
		{"empty", nil, trusted, certload.ErrNoCRL, nil, 0},
		{"not PEM", []byte("garbage"), trusted, certload.ErrNoCRL, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := certload.ParseCRLs(tc.data, "crl.pem", tc.cas)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || r != nil {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "certload: ") || !strings.Contains(msg, "crl.pem") || strings.Contains(msg, "BEGIN") {
					t.Errorf("message %q: want the certload: prefix and the origin, never the contents", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.CRLs()); got != tc.numCRLs {
				t.Errorf("%d CRLs, want %d", got, tc.numCRLs)
			}
			for _, c := range tc.checks {
				if got := r.IsRevoked(c.leaf.Cert); got != c.revoked {
					t.Errorf("%s (issuer %s): revoked %v, want %v", c.leaf.Cert.Subject, c.leaf.Cert.Issuer, got, c.revoked)
				}
			}
		})
	}
}

func TestRevocationsAccessors(t *testing.T) {
	caA := pki.NewCA(t, "CA A2A Root CA")
	caB := pki.NewCA(t, "CA A2A Root CA G2")
	leaf := caA.Issue(t, "lambda")
	soon := time.Now().Add(time.Hour).Truncate(time.Second)
	data := join(
		crlOf(t, caA.Cert, caA.Key, 9, []*big.Int{leaf.Cert.SerialNumber, big.NewInt(42)}, nil),
		crlOf(t, caB.Cert, caB.Key, 2, nil, func(l *x509.RevocationList) { l.NextUpdate = soon }),
	)
	r, err := certload.ParseCRLs(data, "crl.pem", []*x509.Certificate{caA.Cert, caB.Cert})
	if err != nil {
		t.Fatal(err)
	}
	a, b := r.For(caA.Cert), r.For(caB.Cert)
	if a == nil || b == nil || !a.Issuer.Equal(caA.Cert) || !b.Issuer.Equal(caB.Cert) {
		t.Fatal("For does not find each CA's CRL")
	}
	if a.List.Number.Int64() != 9 || a.Len() != 2 || !a.Revoked(big.NewInt(42)) || a.Revoked(big.NewInt(43)) || b.Len() != 0 {
		t.Errorf("CRL A: number %v len %d; CRL B len %d", a.List.Number, a.Len(), b.Len())
	}
	if got := r.NextUpdate(); !got.Equal(soon) {
		t.Errorf("NextUpdate %s, want the earliest %s", got, soon)
	}
	if r.For(pki.NewCA(t, "CA A2A Root CA G3").Cert) != nil {
		t.Error("For found a CRL for a CA without one")
	}

	var none *certload.Revocations
	if none.IsRevoked(leaf.Cert) || none.CRLs() != nil || none.For(caA.Cert) != nil || !none.NextUpdate().IsZero() {
		t.Error("a nil Revocations must revoke nothing")
	}
}

func FuzzParseCRLs(f *testing.F) {
	ca := pki.NewCA(f, "CA A2A Root CA")
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: now, ReasonCode: 1}},
	}, ca.Cert, ca.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	f.Add(ca.PEM)
	cas := []*x509.Certificate{ca.Cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := certload.ParseCRLs(data, "fuzz", cas)
		if (r == nil) == (err == nil) {
			t.Fatalf("result %v and error %v", r, err)
		}
		if r != nil {
			for _, c := range r.CRLs() {
				if !c.Issuer.Equal(ca.Cert) || c.List.CheckSignatureFrom(ca.Cert) != nil {
					t.Fatal("accepted a CRL the trusted CA did not sign")
				}
			}
		}
	})
}
