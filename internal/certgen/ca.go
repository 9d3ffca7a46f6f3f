package certgen

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Errors that the command and the tests branch on.
var (
	ErrNoCA               = errors.New("certgen: no CA")
	ErrIncompleteCA       = errors.New("certgen: CA is incomplete")
	ErrCAKey              = errors.New("certgen: CA key unusable")
	ErrRotationInProgress = errors.New("certgen: a CA rotation is in progress")
	ErrNoRotation         = errors.New("certgen: no CA rotation in progress")
	ErrOldLeaves          = errors.New("certgen: leaves are still issued by the current CA")
	ErrUnknownCertificate = errors.New("certgen: unknown certificate")
	ErrNotIssued          = errors.New("certgen: certificate is not issued by a CA of the bundle")
	ErrBadCRL             = errors.New("certgen: unusable CRL file")
)

// rootCN is the common name of every CA certgen creates. A rotation keeps
// it: see RotateCA.
const rootCN = "CA A2A Root CA"

// caYears is the lifetime of every CA certgen creates.
const caYears = 10

// NextCAPaths returns the next CA's certificate and key paths under dir:
// the CA that `certgen rotate-ca` creates beside the current one.
func NextCAPaths(dir string) (cert, key string) {
	d := filepath.Join(dir, "ca", "next")
	return filepath.Join(d, "ca-cert.pem"), filepath.Join(d, "ca-key.pem")
}

// BundlePath returns the path of the CA bundle under dir: the current CA,
// followed by the next one during a rotation. Agents and the Lambda trust
// this file (MTLS_CA_CERT_PATH), so a rotation never needs a new setting.
func BundlePath(dir string) string { return filepath.Join(dir, "ca", "ca-bundle.pem") }

// CRLPath returns the path of the CRL file under dir: one PEM "X509 CRL"
// block per CA of the bundle that has one, in bundle order.
func CRLPath(dir string) string { return filepath.Join(dir, "ca", "crl.pem") }

// RetiredDir returns the directory where retire-ca keeps the certificate
// and last CRL of each retired CA, named by the CA's serial.
func RetiredDir(dir string) string { return filepath.Join(dir, "ca", "retired") }

// IssuedDir returns the directory holding a copy of every leaf certificate
// certgen issues, named <SERIAL>.pem, so that a certificate can be revoked
// by serial after its files were replaced.
func IssuedDir(dir string) string { return filepath.Join(dir, "ca", "issued") }

// authority is a CA certificate and where its key lives. The key is read
// only when something is to be signed.
type authority struct {
	cert              *x509.Certificate
	certPath, keyPath string
}

// pairState reports whether the two files of a pair exist. A file that
// cannot be looked at counts as present: reading it then reports why,
// rather than certgen creating a CA over it.
func pairState(certPath, keyPath string) (cert, key bool) {
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	return !errors.Is(errC, fs.ErrNotExist), !errors.Is(errK, fs.ErrNotExist)
}

// loadAuthority reads a CA certificate; the key is checked by signer.
func loadAuthority(certPath, keyPath string) (*authority, error) {
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	cas, err := certload.ParseCAs(data, certPath)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cas[0], certPath: certPath, keyPath: keyPath}, nil
}

// signer reads the CA key and checks that it matches the certificate.
func (a *authority) signer() (crypto.Signer, error) {
	keyPEM, err := os.ReadFile(a.keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing", ErrCAKey, a.keyPath)
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM private key", a.keyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PKCS#8 private key", a.keyPath)
	}
	s, ok := parsed.(crypto.Signer)
	if !ok || !publicKeysEqual(s.Public(), a.cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", a.keyPath, a.certPath)
	}
	return s, nil
}

// loadCAs returns the current CA and, during a rotation, the next one (nil
// otherwise). Keys are not read: the current CA's key is only needed to
// sign its CRL, and may be kept offline otherwise.
func loadCAs(dir string) (cur, next *authority, err error) {
	certPath, keyPath := CAPaths(dir)
	if c, k := pairState(certPath, keyPath); !c {
		if !k {
			return nil, nil, fmt.Errorf("%w in %s: run certgen first", ErrNoCA, filepath.Join(dir, "ca"))
		}
		return nil, nil, fmt.Errorf("%w: %s without %s", ErrIncompleteCA, keyPath, certPath)
	}
	if cur, err = loadAuthority(certPath, keyPath); err != nil {
		return nil, nil, err
	}
	if next, err = loadNextCA(dir); err != nil {
		return nil, nil, err
	}
	return cur, next, nil
}

// loadNextCA returns the next CA, or nil when no rotation is in progress.
func loadNextCA(dir string) (*authority, error) {
	certPath, keyPath := NextCAPaths(dir)
	switch c, k := pairState(certPath, keyPath); {
	case !c && !k:
		return nil, nil
	case !c || !k:
		return nil, fmt.Errorf("%w: need both %s and %s (or remove %s)", ErrIncompleteCA, certPath, keyPath, filepath.Dir(certPath))
	}
	return loadAuthority(certPath, keyPath)
}

// chain returns the CAs of the bundle: the current one, then the next.
func chain(cur, next *authority) []*authority {
	if next == nil {
		return []*authority{cur}
	}
	return []*authority{cur, next}
}

func certsOf(as []*authority) []*x509.Certificate {
	out := make([]*x509.Certificate, len(as))
	for i, a := range as {
		out[i] = a.cert
	}
	return out
}

// newCA creates a self-signed CA with a new key of kind. Its subject is
// rawSubject, byte for byte, when given (the next CA of a rotation takes the
// current one's), else CN=CA A2A Root CA, O=CA A2A, C=FR.
func newCA(rawSubject []byte, kind string, now time.Time) (der []byte, key crypto.Signer, err error) {
	key, err = newKey(kind, true)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: rootCN, Organization: []string{"CA A2A"}, Country: []string{"FR"}},
		RawSubject:            rawSubject,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(caYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	return der, key, err
}

// caLabel names a CA in messages. Every generation has the same subject,
// so the label adds what tells them apart: the serial and the start of
// the key identifier, as `openssl x509 -serial -ext subjectKeyIdentifier`
// prints them.
func caLabel(c *x509.Certificate) string {
	kid := strings.ToUpper(hex.EncodeToString(c.SubjectKeyId))
	if len(kid) > 8 {
		kid = kid[:8]
	}
	return fmt.Sprintf("%q serial %s key %s", c.Subject.String(), SerialHex(c.SerialNumber), kid)
}

// keyKind returns the --key-type that made cert's key.
func keyKind(cert *x509.Certificate) string {
	if cert.PublicKeyAlgorithm == x509.RSA {
		return "rsa"
	}
	return "ecdsa"
}

// writeBundle makes the bundle file hold exactly the CAs of as, in order,
// and reports what it did ("" when the file was already right).
func writeBundle(dir string, as []*authority) (string, error) {
	var want bytes.Buffer
	for _, a := range as {
		_ = pem.Encode(&want, &pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
	}
	path := BundlePath(dir)
	verb := "updated"
	switch old, err := os.ReadFile(path); {
	case errors.Is(err, fs.ErrNotExist):
		verb = "created"
	case err != nil:
		return "", err
	case bytes.Equal(old, want.Bytes()):
		return "", nil
	}
	if err := writeAtomic(path, want.Bytes(), 0o644); err != nil {
		return "", err
	}
	return verb, nil
}

// SerialHex formats a certificate serial as openssl prints it
// (`openssl x509 -serial`): upper-case hex, an even number of digits.
func SerialHex(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	return strings.ToUpper(hex.EncodeToString(b))
}
