package certload_test

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/poll"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// crlSecrets writes CRL secrets into moto_server through the real SDK.
type crlSecrets struct {
	t  *testing.T
	sm *secretsmanager.Client
}

func (s crlSecrets) create(name string, value []byte) {
	s.t.Helper()
	if _, err := s.sm.CreateSecret(s.t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(value))}); err != nil {
		s.t.Fatal(err)
	}
}

// put makes value the secret's current version, as certgen publish does.
func (s crlSecrets) put(name string, value []byte) {
	s.t.Helper()
	if _, err := s.sm.PutSecretValue(s.t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(string(value))}); err != nil {
		s.t.Fatal(err)
	}
}

func (s crlSecrets) putBinary(name string, value []byte) {
	s.t.Helper()
	if _, err := s.sm.PutSecretValue(s.t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretBinary: value}); err != nil {
		s.t.Fatal(err)
	}
}

func (s crlSecrets) remove(name string) {
	s.t.Helper()
	if _, err := s.sm.DeleteSecret(s.t.Context(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		s.t.Fatal(err)
	}
}

// switchableSM sends GetSecretValue to one of two real clients: moto_server,
// or an endpoint where nothing listens (Secrets Manager unreachable).
type switchableSM struct {
	mu        sync.Mutex
	up, down  certload.GetSecretValueAPI
	reachable bool
}

func (s *switchableSM) set(reachable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reachable = reachable
}

func (s *switchableSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.mu.Lock()
	api := s.down
	if s.reachable {
		api = s.up
	}
	s.mu.Unlock()
	return api.GetSecretValue(ctx, in, opts...)
}

// TestCRLFromSecretsManager: MTLS_CRL_SECRET_ID against moto_server through
// the real SDK. Start-up refuses what MTLS_CRL refuses, plus a missing
// secret; every new version goes through the same checks as a file; a
// version that does not verify and a read that fails leave the previous
// list in force; the watcher fetches by itself, with the client built from
// AWS_ENDPOINT_URL.
func TestCRLFromSecretsManager(t *testing.T) {
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	awsCfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	secrets := crlSecrets{t: t, sm: secretsmanager.NewFromConfig(awsCfg)}

	ca := pki.NewCA(t, "CA A2A Root CA")
	impostor := pki.NewCA(t, "CA A2A Root CA") // the trusted name, another key
	lambda, extractor := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	src := static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageServerAndClient)
	empty := crlOf(t, ca.Cert, ca.Key, 1, nil, nil)
	revoking := func(n int64, leaves ...*pki.Leaf) []byte {
		var serials []*big.Int
		for _, l := range leaves {
			serials = append(serials, l.Cert.SerialNumber)
		}
		return crlOf(t, ca.Cert, ca.Key, n, serials, nil)
	}

	t.Run("start-up", func(t *testing.T) {
		secrets.create("ca-a2a/crl-placeholder", []byte("Zm9vYmFyPlaceholder0123456789"))
		secrets.create("ca-a2a/crl-rogue", crlOf(t, impostor.Cert, impostor.Key, 1, nil, nil))
		secrets.create("ca-a2a/crl-binary", []byte("x"))
		secrets.putBinary("ca-a2a/crl-binary", empty)
		for name, tc := range map[string]struct {
			id   string
			want error
		}{
			"a missing secret":           {"ca-a2a/crl-nope", certload.ErrSecretMissing},
			"the secret's placeholder":   {"ca-a2a/crl-placeholder", certload.ErrNoCRL},
			"a list of another CA's key": {"ca-a2a/crl-rogue", certload.ErrUntrustedCRL},
			"a binary secret":            {"ca-a2a/crl-binary", certload.ErrSecretBinary},
		} {
			t.Run(name, func(t *testing.T) {
				w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{SecretID: tc.id, SecretsManager: secrets.sm}, src, certload.Options{})
				if w != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.id) || strings.Contains(err.Error(), "BEGIN") {
					t.Fatalf("LoadCRL = %v, %v; want %v naming %s", w, err, tc.want, tc.id)
				}
			})
		}
	})

	t.Run("each version goes through the same checks", func(t *testing.T) {
		const id = "ca-a2a/crl-steps"
		secrets.create(id, empty)
		down := secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
			o.BaseEndpoint = aws.String("http://127.0.0.1:" + strconv.Itoa(loopback.Port(t))) // a free port: nothing listens
			o.RetryMaxAttempts = 1
		})
		sm := &switchableSM{up: secrets.sm, down: down, reachable: true}
		w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{SecretID: id, SecretsManager: sm, Refresh: time.Hour}, src, certload.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if w.Revocations().IsRevoked(lambda.Cert) {
			t.Fatal("an empty CRL revokes")
		}
		if changed, err := w.Reload(); changed || err != nil {
			t.Fatalf("Reload of an unchanged secret: %v %v", changed, err)
		}
		steps := []struct {
			name    string
			change  func()
			want    error // of Reload; errAny: any error
			revoked map[*pki.Leaf]bool
		}{
			{"a new version revokes lambda", func() { secrets.put(id, revoking(2, lambda)) },
				nil, map[*pki.Leaf]bool{lambda: true, extractor: false}},
			{"a version signed by an impostor of the CA is refused, the previous list kept", func() {
				secrets.put(id, crlOf(t, impostor.Cert, impostor.Key, 3, []*big.Int{extractor.Cert.SerialNumber}, nil))
			}, certload.ErrUntrustedCRL, map[*pki.Leaf]bool{lambda: true, extractor: false}},
			{"a truncated version is refused, the previous list kept", func() { secrets.put(id, []byte("-----BEGIN X509 CRL-----\nMIIB")) },
				certload.ErrNoCRL, map[*pki.Leaf]bool{lambda: true}},
			{"a binary version is refused, the previous list kept", func() { secrets.putBinary(id, revoking(3)) },
				certload.ErrSecretBinary, map[*pki.Leaf]bool{lambda: true}},
			{"Secrets Manager unreachable: the previous list kept", func() { sm.set(false) },
				errAny, map[*pki.Leaf]bool{lambda: true}},
			{"reachable again, a good version revokes extractor too", func() { sm.set(true); secrets.put(id, revoking(4, lambda, extractor)) },
				nil, map[*pki.Leaf]bool{lambda: true, extractor: true}},
			{"the secret deleted: the previous list kept", func() { secrets.remove(id) },
				certload.ErrSecretMissing, map[*pki.Leaf]bool{lambda: true, extractor: true}},
		}
		for _, st := range steps {
			before := w.Revocations()
			st.change()
			changed, err := w.Reload()
			if st.want == nil && (err != nil || !changed) || st.want != nil && (err == nil || changed || st.want != errAny && !errors.Is(err, st.want)) {
				t.Fatalf("%s: Reload = %v, %v; want error %v", st.name, changed, err, st.want)
			}
			if err != nil {
				if w.Revocations() != before {
					t.Fatalf("%s: a refused version replaced the list in force", st.name)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "certload: ") || !strings.Contains(msg, id) || strings.Contains(msg, "BEGIN") {
					t.Errorf("%s: message %q must name the secret, never its contents", st.name, msg)
				}
			}
			for l, want := range st.revoked {
				if got := w.Revocations().IsRevoked(l.Cert); got != want {
					t.Errorf("%s: %s revoked %v, want %v", st.name, l.Cert.Subject.CommonName, got, want)
				}
			}
		}
	})

	t.Run("the watcher fetches every refresh", func(t *testing.T) {
		const id = "ca-a2a/crl"
		secrets.create(id, empty)
		logs := &syncbuf.Buffer{}
		// No client given: one from the default configuration, which
		// moto.Env pointed at moto_server through AWS_ENDPOINT_URL.
		w, err := certload.LoadCRL(t.Context(), certload.CRLConfig{SecretID: id, Refresh: 20 * time.Millisecond}, src,
			certload.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if line := lineWith(logs.String(), "CRL loaded"); !strings.Contains(line, `"crl":"secret ca-a2a/crl"`) {
			t.Errorf("no load line naming the secret: %s", logs.String())
		}
		secrets.put(id, revoking(2, lambda))
		poll.Until(t, "the new version in force", func() bool { return w.Revocations().IsRevoked(lambda.Cert) })

		secrets.put(id, crlOf(t, impostor.Cert, impostor.Key, 3, nil, nil))
		poll.Until(t, "the refusal in the log", func() bool {
			return strings.Contains(logs.String(), `"msg":"CRL refused; the previous CRL stays in force"`)
		})
		line := lineWith(logs.String(), "CRL refused")
		for _, want := range []string{`"level":"ERROR"`, "secret ca-a2a/crl", "not signed by a trusted CA"} {
			if !strings.Contains(line, want) {
				t.Errorf("refusal line %s lacks %q", line, want)
			}
		}

		secrets.remove(id)
		poll.Until(t, "the failed read in the log", func() bool {
			return strings.Contains(logs.String(), `"msg":"CRL could not be read; the previous CRL stays in force"`)
		})
		line = lineWith(logs.String(), "CRL could not be read")
		for _, want := range []string{`"level":"ERROR"`, "secret ca-a2a/crl", "secret not found"} {
			if !strings.Contains(line, want) {
				t.Errorf("read failure line %s lacks %q", line, want)
			}
		}
		if !w.Revocations().IsRevoked(lambda.Cert) {
			t.Fatal("the refused version or the failed read replaced the list in force")
		}
		if n := strings.Count(logs.String(), "CRL refused"); n != 1 {
			t.Errorf("the same refused version was reported %d times", n)
		}
	})
}

// errAny stands for any error in a table of expected errors.
var errAny = errors.New("any error")
