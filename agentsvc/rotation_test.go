package agentsvc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/poll"
	"github.com/ca-a2a/ca-a2a/internal/testutil/stack"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// eventually polls cond every 50 ms (a check may be a handshake) until it
// holds, for at most poll.Bound: how long one rotation or revocation step
// may take to be observed everywhere. The agents and the identity provider
// poll their files every stack.PollInterval, so this is a generous
// ceiling, not a measurement.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Every(t, 50*time.Millisecond, what, cond)
}

// probe sends one request over a new connection that presents leaf (nil:
// the stack's own lambda certificate is not needed, none is sent) and
// returns the answer's status and the certificate the server presented,
// or the error. The server is not verified: what is probed is whether it
// accepts the client.
func probe(t *testing.T, leaf *tls.Certificate, method, url string, body io.Reader, header http.Header) (int, *x509.Certificate, error) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{*leaf}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.TLS.PeerCertificates[0], nil
}

// agentAccepts reports whether agent completes a request from a client
// presenting leaf (its /health: 200 or 503 means the handshake and the
// per-request certificate check passed).
func agentAccepts(t *testing.T, s *stack.Stack, agent string, leaf *tls.Certificate) bool {
	status, _, err := probe(t, leaf, http.MethodGet, s.URLs[agent]+"/health", nil, nil)
	return err == nil && (status == 200 || status == 503)
}

// idpIssues reports whether the identity provider gives lambda a token
// over a connection presenting leaf.
func idpIssues(t *testing.T, s *stack.Stack, leaf *tls.Certificate) bool {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"lambda"}}.Encode()
	status, _, err := probe(t, leaf, http.MethodPost, s.IdP.TokenURL, strings.NewReader(form),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	return err == nil && status == 200
}

// issuedBy reports whether cert was issued by ca (same name, so by key).
func issuedBy(cert, ca *x509.Certificate) bool {
	return cert != nil && bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId) && cert.CheckSignatureFrom(ca) == nil
}

// load is a caller making process_document calls through the whole
// pipeline (Lambda -> orchestrator -> extractor, archivist, validator,
// each hop mTLS with a bound token from the identity provider) until
// stopped, counting answers. A call counts as good only when the document
// is archived: a stage that failed inside the pipeline is a failed call too.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, s *stack.Stack, c *caller, workers int, maxCalls int64) *load {
	t.Helper()
	for i := range 4 {
		s.PutDocument(t, fmt.Sprintf("incoming/rot-%d.csv", i), fmt.Appendf(nil, "id,amount\n%d,10\n%d,20\n", i, i+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	l := &load{stop: cancel}
	for w := range workers {
		l.wg.Go(func() {
			for n := 0; ctx.Err() == nil && l.ok.Load()+l.failed.Load() < maxCalls; n++ {
				key := fmt.Sprintf("incoming/rot-%d.csv", (w+n)%4)
				var res agentapi.ProcessResult
				callCtx, cancelCall := context.WithTimeout(ctx, 30*time.Second)
				err := c.client.Call(callCtx, agentapi.Orchestrator, agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: key}, &res)
				cancelCall()
				switch {
				case ctx.Err() != nil:
					return // stopped: a call cut short by the test is not the system's failure
				case err == nil && res.Status == agentapi.StatusArchived:
					l.ok.Add(1)
				default:
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, fmt.Sprintf("%s at %s: err=%v status=%s extraction=%+v validation=%+v archive=%+v",
							key, time.Now().Format("15:04:05.000"), err, res.Status, res.Stages.Extraction, res.Stages.Validation, res.Stages.Archive))
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// flowing waits until at least n more calls succeeded.
func (l *load) flowing(t *testing.T, what string, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	eventually(t, what+": calls flow", func() bool { return l.ok.Load() >= target })
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	t.Logf("%d calls answered, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d failed calls during the rotation; first ones:\n%s", n, strings.Join(l.errs, "\n"))
	}
}

// followingCaller is a caller whose certificate follows the files, as an
// agent's does (the Lambda in AWS gets its new certificate from a new
// execution environment instead).
func followingCaller(t *testing.T, s *stack.Stack, name string) *caller {
	t.Helper()
	return loadCaller(t, s, name, stack.PollInterval)
}

// TestCARotationUnderLoad applies the three steps of a CA rotation
// (docs/operations.md) to the files of a running system while a caller
// keeps the whole pipeline busy: certgen rotate-ca (every agent and the
// identity provider trust both CAs), certgen --force (every leaf re-issued
// by the next CA), certgen retire-ca. Each step is observed to have taken
// effect everywhere before the next; no call may fail, and at the end no
// certificate of the old CA is accepted, neither by a new handshake nor on
// a connection opened before the retirement.
func TestCARotationUnderLoad(t *testing.T) {
	s := stack.Start(t)
	dir := s.CertsDir
	lambda := followingCaller(t, s, "lambda")
	l := startLoad(t, s, lambda, 3, 20000)
	defer l.stop()
	l.flowing(t, "before the rotation", 5)

	caCert, caKey := certgen.CAPaths(dir)
	oldCA := pki.LoadCA(t, caCert, caKey)
	oldLeaf := oldCA.Issue(t, "lambda").TLS() // a probe: a client of the old CA

	// Step 1: trust both.
	t.Logf("step 1 at %s", time.Now().Format("15:04:05.000"))
	if err := certgen.RotateCA(certgen.RotateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	nextCert, nextKey := certgen.NextCAPaths(dir)
	nextCA := pki.LoadCA(t, nextCert, nextKey)
	if !bytes.Equal(nextCA.Cert.RawSubject, oldCA.Cert.RawSubject) {
		t.Fatal("the next CA does not carry the current CA's name")
	}
	newLeaf := nextCA.Issue(t, "lambda").TLS()
	for _, a := range stack.Agents {
		eventually(t, "step 1: "+a+" accepts a client of the next CA", func() bool { return agentAccepts(t, s, a, &newLeaf) })
	}
	eventually(t, "step 1: the identity provider accepts a client of the next CA", func() bool { return idpIssues(t, s, &newLeaf) })
	l.flowing(t, "after step 1", 30)

	// Connections of the old CA opened now, kept alive across step 3: one
	// presents the leaf alone, the other sends a copy of the old CA's
	// certificate along (which must not vouch for the leaf after step 3).
	oldWithCA := tls.Certificate{Certificate: [][]byte{oldLeaf.Certificate[0], oldCA.Cert.Raw}, PrivateKey: oldLeaf.PrivateKey}
	kept := map[string]*http.Client{}
	for name, cert := range map[string]tls.Certificate{"leaf alone": oldLeaf, "leaf and old CA": oldWithCA} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}
		defer tr.CloseIdleConnections()
		kept[name] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
		if r, err := kept[name].Get(s.URLs["orchestrator"] + "/health"); err != nil {
			t.Fatalf("%s: %v", name, err)
		} else {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	}

	// Step 2: every leaf from the next CA.
	t.Logf("step 2 at %s", time.Now().Format("15:04:05.000"))
	if err := certgen.Generate(certgen.Options{Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, a := range stack.Agents {
		eventually(t, "step 2: "+a+" serves a certificate of the next CA", func() bool {
			_, served, err := probe(t, &newLeaf, http.MethodGet, s.URLs[a]+"/health", nil, nil)
			return err == nil && issuedBy(served, nextCA.Cert)
		})
	}
	eventually(t, "step 2: the identity provider serves a certificate of the next CA", func() bool {
		_, served, err := probe(t, nil, http.MethodGet, s.IdP.JWKSURL, nil, nil)
		return err == nil && issuedBy(served, nextCA.Cert)
	})
	eventually(t, "step 2: the caller presents a certificate of the next CA", func() bool {
		return issuedBy(lambda.src.Bundle().Leaf(), nextCA.Cert)
	})
	l.flowing(t, "after step 2", 30)

	// Step 3: retire the old CA.
	t.Logf("step 3 at %s", time.Now().Format("15:04:05.000"))
	if err := certgen.RetireCA(certgen.RetireOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	for _, a := range stack.Agents {
		eventually(t, "step 3: "+a+" refuses a client of the old CA", func() bool { return !agentAccepts(t, s, a, &oldLeaf) })
		if !agentAccepts(t, s, a, &newLeaf) {
			t.Errorf("step 3: %s refuses a client of the remaining CA", a)
		}
	}
	eventually(t, "step 3: the identity provider refuses a client of the old CA", func() bool { return !idpIssues(t, s, &oldLeaf) })
	l.flowing(t, "after step 3", 30)
	l.finish(t)

	// The connections opened with the old CA's certificate before step 3
	// are refused on their next request and closed.
	for name, c := range kept {
		var reused bool
		req, _ := http.NewRequest(http.MethodGet, s.URLs["orchestrator"]+"/health", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		r, err := c.Do(req)
		if err != nil {
			t.Fatalf("kept-alive connection of the old CA (%s): %v", name, err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !reused || r.StatusCode != 401 || !r.Close || !strings.Contains(string(body), "no longer trusted") ||
			!strings.Contains(string(body), `"reason":"certificate_untrusted"`) {
			t.Errorf("kept-alive connection of the old CA (%s): reused %v, %d %s, closed %v", name, reused, r.StatusCode, body, r.Close)
		}
	}
}

// keptAlive is a client that keeps one connection to an agent and says,
// per request, whether it reused it.
type keptAlive struct {
	client *http.Client
	token  func() string
}

type answer struct {
	status       int
	body         string
	reused, shut bool
	err          error
}

func newKeptAlive(t *testing.T, s *stack.Stack, src certload.Source, as, server string) *keptAlive {
	t.Helper()
	k, err := tryKeptAlive(t, s, src, as, server)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tryKeptAlive is newKeptAlive that returns the token request's error.
func tryKeptAlive(t *testing.T, s *stack.Stack, src certload.Source, as, server string) (*keptAlive, error) {
	t.Helper()
	ts, err := tokensource.New(tokensource.Config{TokenURL: s.IdP.TokenURL, ClientID: as, Certificate: src, ServerName: s.IdP.ServerName})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(server), certload.ClientOptions{}), MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &keptAlive{client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, token: func() string { return tok.AccessToken }}, nil
}

func (k *keptAlive) call(t *testing.T, url string) answer {
	t.Helper()
	var a answer
	req, _ := http.NewRequest(http.MethodPost, url+"/message", strings.NewReader(`{"jsonrpc":"2.0","method":"list_skills","id":1}`))
	req.Header.Set("Authorization", "Bearer "+k.token())
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}))
	resp, err := k.client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.status, a.body, a.shut = resp.StatusCode, string(b), resp.Close
	return a
}

func fileSource(t *testing.T, s *stack.Stack, name string) certload.Source {
	t.Helper()
	cert, key, ca := s.Leaf(name)
	src, closeFn, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return src
}

// TestRevocation: certgen revoke is written to the CRL file the agents
// watch. A revoked client is refused on the connection it kept open (401,
// connection closed) and then at the handshake, within 60 s; an unrevoked
// one is unaffected; the orchestrator refuses to call a revoked peer; a
// CRL that no trusted CA signed is refused with a clear log line and the
// previous CRL stays in force.
func TestRevocation(t *testing.T) {
	s := stack.Start(t)
	lambda := newCaller(t, s, "lambda")
	asLambda, asOrchestrator := keptAliveConnections(t, s)

	t.Run("the orchestrator refuses a revoked peer", func(t *testing.T) {
		if err := certgen.Revoke(certgen.RevokeOptions{Dir: s.CertsDir, Name: "validator"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var res agentapi.ProcessResult
		n := 0
		eventually(t, "a pipeline without the revoked validator", func() bool {
			n++ // a new document each time: an archived one skips validation
			key := fmt.Sprintf("incoming/r-%d.csv", n)
			s.PutDocument(t, key, fmt.Appendf(nil, "id,amount\n%d,10\n", n))
			res = agentapi.ProcessResult{}
			if err := lambda.client.Call(t.Context(), "orchestrator", agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: key}, &res); err != nil {
				t.Fatal(err)
			}
			return res.Stages.Validation != nil && res.Stages.Validation.Code == agentapi.CodeUnavailable
		})
		t.Logf("the orchestrator refused the revoked validator %s after the revocation", time.Since(start).Round(time.Millisecond))
		if res.Status != agentapi.StatusFailed || res.Stages.Extraction == nil || res.Stages.Extraction.Status != agentapi.StageOK {
			t.Fatalf("pipeline: %+v", res)
		}
		// Where an operator sees why: the orchestrator's health check of
		// the peer fails, and its log says the certificate is revoked.
		if code, body := rawGet(t, s, "lambda", "orchestrator", "/health"); code != 503 || !strings.Contains(body, `"peer:validator":{"status":"failing"`) {
			t.Fatalf("orchestrator health: %d %s", code, body)
		}
		if line := logLineWith(s.Log("orchestrator"), `"check":"peer:validator"`); !strings.Contains(line, "certificate has been revoked") {
			t.Errorf("the orchestrator's log does not say why the validator is refused: %s", line)
		}
	})

	t.Run("a revoked client on its kept-alive connection, then at the handshake", func(t *testing.T) {
		if err := certgen.Revoke(certgen.RevokeOptions{Dir: s.CertsDir, Name: "lambda"}); err != nil {
			t.Fatal(err)
		}
		lambdaRefused(t, s, asLambda, asOrchestrator)
	})

	t.Run("a CRL no trusted CA signed is refused, the previous one kept", func(t *testing.T) {
		crlPath := certgen.CRLPath(s.CertsDir)
		if err := os.WriteFile(crlPath+".tmp", forgedCRL(t, s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(crlPath+".tmp", crlPath); err != nil {
			t.Fatal(err)
		}
		forgedCRLRefused(t, s, crlPath)
	})
}

// TestRevocationFromSecretsManager: agents configured as in AWS
// (MTLS_CRL_SECRET_ID) apply a revocation that certgen publish writes to
// the secret, without a restart, as they apply the file: the revoked client
// is refused on its kept-alive connection and at the handshake, an
// unrevoked one is unaffected. A version no trusted CA signed is refused
// with a clear log line, and a read that fails (the secret deleted) is
// logged; both leave the previous list in force.
func TestRevocationFromSecretsManager(t *testing.T) {
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	s := stack.Start(t, stack.CRLFromSecretsManager())
	awsCfg, err := awsconfig.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(awsCfg)
	for _, a := range stack.Agents {
		if line := logLineWith(s.Log(a), `"msg":"CRL loaded"`); !strings.Contains(line, `"crl":"secret ca-a2a/crl"`) {
			t.Fatalf("%s did not load its CRL from the secret: %s", a, line)
		}
	}
	asLambda, asOrchestrator := keptAliveConnections(t, s)

	// The runbook: revoke, publish; no redeploy.
	if err := certgen.Revoke(certgen.RevokeOptions{Dir: s.CertsDir, Name: "lambda"}); err != nil {
		t.Fatal(err)
	}
	if err := certgen.Publish(t.Context(), sm, s.CertsDir, "ca-a2a/", nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	lambdaRefused(t, s, asLambda, asOrchestrator)

	t.Run("a version no trusted CA signed is refused, the previous list kept", func(t *testing.T) {
		forged := string(forgedCRL(t, s))
		if _, err := sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(stack.CRLSecretID), SecretString: &forged}); err != nil {
			t.Fatal(err)
		}
		forgedCRLRefused(t, s, "secret "+stack.CRLSecretID)
	})

	t.Run("a failed read keeps the previous list", func(t *testing.T) {
		if _, err := sm.DeleteSecret(t.Context(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(stack.CRLSecretID), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		for _, a := range stack.Agents {
			eventually(t, a+" logs the failed read", func() bool {
				return strings.Contains(s.Log(a), `"msg":"CRL could not be read; the previous CRL stays in force"`)
			})
			if line := logLineWith(s.Log(a), "CRL could not be read"); !strings.Contains(line, "secret not found: ca-a2a/crl") {
				t.Errorf("%s: read failure line %s does not say why", a, line)
			}
			if !agentRefuses(t, s, a, "lambda") {
				t.Errorf("%s no longer refuses lambda: a failed read dropped the CRL", a)
			}
		}
	})
}

// keptAliveConnections opens the two connections the revocation tests
// watch, each after a first call: lambda's to the orchestrator (lambda is
// the one revoked) and the orchestrator's to the validator (never revoked).
func keptAliveConnections(t *testing.T, s *stack.Stack) (asLambda, asOrchestrator *keptAlive) {
	t.Helper()
	asLambda = newKeptAlive(t, s, fileSource(t, s, "lambda"), "lambda", "orchestrator")
	asOrchestrator = newKeptAlive(t, s, fileSource(t, s, "orchestrator"), "orchestrator", "validator")
	for _, c := range []struct {
		k   *keptAlive
		url string
	}{{asLambda, s.URLs["orchestrator"]}, {asOrchestrator, s.URLs["validator"]}} {
		if a := c.k.call(t, c.url); a.err != nil || a.status != 200 || a.reused {
			t.Fatalf("first call: %+v", a)
		}
	}
	return asLambda, asOrchestrator
}

// lambdaRefused checks, once lambda's certificate is revoked, that it is
// refused on its kept-alive connection (401, connection closed, logged),
// then at every agent's handshake, while the orchestrator's connection
// keeps working.
func lambdaRefused(t *testing.T, s *stack.Stack, asLambda, asOrchestrator *keptAlive) {
	t.Helper()
	var refused answer
	eventually(t, "the revoked client refused", func() bool {
		refused = asLambda.call(t, s.URLs["orchestrator"])
		return refused.status == 401
	})
	if !refused.reused || !refused.shut || !strings.Contains(refused.body, "client certificate has been revoked") || !strings.Contains(refused.body, `"code":-32010`) ||
		!strings.Contains(refused.body, `"reason":"certificate_revoked"`) {
		t.Fatalf("refusal on the kept-alive connection: %+v", refused)
	}
	if a := asLambda.call(t, s.URLs["orchestrator"]); a.err == nil || a.reused {
		t.Fatalf("a new connection of the revoked client: %+v", a)
	}
	if !strings.Contains(s.Log("orchestrator"), `"msg":"client certificate refused on an open connection"`) {
		t.Error("no log line for the refusal on the open connection")
	}
	for _, a := range stack.Agents {
		eventually(t, a+" refuses the revoked client at the handshake", func() bool { return agentRefuses(t, s, a, "lambda") })
	}
	// The unrevoked client keeps its connection and its calls.
	if a := asOrchestrator.call(t, s.URLs["validator"]); a.err != nil || a.status != 200 || !a.reused {
		t.Fatalf("unrevoked client: %+v", a)
	}
}

// forgedCRL is a PEM CRL that revokes the orchestrator, signed by an
// impostor of the CA: its name, another key.
func forgedCRL(t *testing.T, s *stack.Stack) []byte {
	t.Helper()
	impostor := pki.NewCA(t, "CA A2A Root CA")
	orch := fileSource(t, s, "orchestrator").Bundle().Leaf()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(99), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: orch.SerialNumber, RevocationTime: time.Now()}}}, impostor.Cert, impostor.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: certload.PEMTypeCRL, Bytes: der})
}

// forgedCRLRefused waits for every agent to refuse the forgedCRL read from
// origin with a clear log line, then checks the previous list stays in
// force (lambda refused) and the forged one's revocation is not applied.
func forgedCRLRefused(t *testing.T, s *stack.Stack, origin string) {
	t.Helper()
	for _, a := range stack.Agents {
		eventually(t, a+" logs the refusal", func() bool {
			return strings.Contains(s.Log(a), `"msg":"CRL refused; the previous CRL stays in force"`)
		})
		line := logLineWith(s.Log(a), "CRL refused")
		for _, want := range []string{`"level":"ERROR"`, origin, "not signed by a trusted CA"} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: refusal line %s lacks %q", a, line, want)
			}
		}
	}
	for _, a := range stack.Agents {
		if !agentRefuses(t, s, a, "lambda") {
			t.Errorf("%s no longer refuses lambda: the previous CRL was dropped", a)
		}
	}
	if a := newKeptAlive(t, s, fileSource(t, s, "orchestrator"), "orchestrator", "extractor").call(t, s.URLs["extractor"]); a.err != nil || a.status != 200 {
		t.Fatalf("the forged CRL's revocation of the orchestrator was applied: %+v", a)
	}
}

// logLineWith returns the last line of log that contains s.
func logLineWith(log, s string) string {
	line := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			line = l
		}
	}
	return line
}

func agentRefuses(t *testing.T, s *stack.Stack, agent, as string) bool {
	cert, key, _ := s.Leaf(as)
	leaf, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return !agentAccepts(t, s, agent, &leaf)
}

// TestCertificateExpiresOnAnOpenConnection: a certificate that expires
// while its connection is open is refused on that connection's next
// request, and the connection is closed.
func TestCertificateExpiresOnAnOpenConnection(t *testing.T) {
	s := stack.Start(t)
	caCert, caKey := certgen.CAPaths(s.CertsDir)
	ca := pki.LoadCA(t, caCert, caKey)
	bundle, err := os.ReadFile(certgen.BundlePath(s.CertsDir))
	if err != nil {
		t.Fatal(err)
	}
	// The certificate must outlive the token request and the first call,
	// and then expire while the connection is open. It lives a few seconds
	// from now; when the setup took longer than that (a loaded machine),
	// the certificate had expired before the connection was served, and
	// the setup is tried again with a lifetime twice as long.
	// The longest lifetime tried stays under the server's idle timeout,
	// which would close the connection before the certificate expires.
	var k *keptAlive
	var notAfter time.Time
	for lifetime := 3 * time.Second; ; lifetime *= 2 {
		short := ca.Issue(t, "lambda", pki.Validity(time.Now().Add(-time.Minute), time.Now().Add(lifetime)))
		notAfter = short.Cert.NotAfter // as encoded: whole seconds
		var a answer
		src, err := certload.FromPEM(short.CertPEM, short.KeyPEM, bundle, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
		if err == nil {
			k, err = tryKeptAlive(t, s, src, "lambda", "orchestrator")
		}
		if err == nil {
			a = k.call(t, s.URLs["orchestrator"])
		}
		if err == nil && a.err == nil && a.status == 200 {
			break
		}
		if !time.Now().After(notAfter) || 2*lifetime > server.IdleTimeout {
			t.Fatalf("before expiry (certificate valid for %s): %v, call %+v", lifetime, err, a)
		}
		t.Logf("the setup outlasted a certificate valid for %s; again with a longer one", lifetime)
	}
	// Until the certificate has expired: time passing, not a wait for
	// another goroutine.
	time.Sleep(time.Until(notAfter) + 100*time.Millisecond)
	a := k.call(t, s.URLs["orchestrator"])
	if !a.reused || a.status != 401 || !a.shut || !strings.Contains(a.body, "client certificate has expired") ||
		!strings.Contains(a.body, `"reason":"certificate_expired"`) {
		t.Fatalf("after expiry, on the open connection: %+v", a)
	}
	if a := k.call(t, s.URLs["orchestrator"]); a.err == nil {
		t.Fatalf("after expiry, a new connection: %+v", a)
	}
}
