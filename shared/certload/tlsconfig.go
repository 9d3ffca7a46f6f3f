package certload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// ServerOptions tune ServerConfig.
type ServerOptions struct {
	// RequireClientCert makes the handshake fail without a client
	// certificate (MTLS_REQUIRE_CLIENT_CERT). When false a certificate is
	// still requested, and verified when one is presented.
	RequireClientCert bool
	// CRL, when set, refuses a client certificate its issuer revoked.
	CRL CRLSource
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// ServerConfig returns the tls.Config of an mTLS server. The server
// certificate and the CA pool come from src at every handshake, so a
// rotation applies to the next connection and leaves those in flight alone.
// Client certificates are verified in VerifyConnection, which also runs on
// resumed sessions: they must chain to the CA, be inside their validity
// window, carry clientAuth and, with a CRL, not be revoked; then authorize
// decides whether that client may connect at all. authorize is required:
// nil refuses every client certificate.
//
// The handshake is where a connection starts; a connection may outlive the
// certificate it was opened with, so a server also checks every request
// (CheckPeer).
func ServerConfig(src Source, authorize Authorizer, opts ServerOptions) *tls.Config {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	auth := tls.RequestClientCert
	if opts.RequireClientCert {
		auth = tls.RequireAnyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &src.Bundle().Certificate, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				if opts.RequireClientCert {
					return errors.New("certload: client certificate required")
				}
				return nil
			}
			leaf := cs.PeerCertificates[0]
			if err := VerifyChain(leaf, cs.PeerCertificates[1:], src.Bundle().Roots, x509.ExtKeyUsageClientAuth, now()); err != nil {
				return fmt.Errorf("certload: client certificate: %w", err)
			}
			if err := checkRevoked(opts.CRL, leaf); err != nil {
				return fmt.Errorf("certload: client certificate: %w", err)
			}
			return authorize.authorize(leaf)
		},
	}
}

// ClientOptions tune ClientConfig.
type ClientOptions struct {
	// ServerName is sent in the TLS handshake (SNI) and keys resumed
	// sessions. It identifies nothing: the authorizer decides who the
	// server must be.
	ServerName string
	// SkipVerify turns off every check of the server (MTLS_VERIFY_SERVER=false).
	// Never use it outside a lab.
	SkipVerify bool
	// SystemRoots also trusts the system roots next to the CA (used for the
	// identity provider, which may carry a public certificate).
	SystemRoots bool
	// SessionCache enables TLS session resumption; nil disables it.
	SessionCache tls.ClientSessionCache
	// CRL, when set, refuses a server certificate its issuer revoked (the
	// revocations apply to the project CA's certificates; the system roots
	// have none here).
	CRL CRLSource
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// RefuseRedirect is the CheckRedirect of every HTTP client that presents a
// certificate of this package: the 3xx answer is returned as it is, since
// following it would carry the request, its bearer token and the client
// certificate to another host or to plain http.
func RefuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ClientConfig returns the tls.Config of an mTLS client that presents the
// certificate of src and accepts only a server whose certificate chains to
// the CA (or, with SystemRoots, to a system root), carries serverAuth, and
// that authorize accepts, whatever address was dialed: local runs dial
// 127.0.0.1 and still verify that the server is the orchestrator. authorize
// is required: nil refuses every server.
//
// The standard verification is replaced by VerifyConnection (it also runs on
// resumed sessions, and reads the CA pool from src at each handshake so a CA
// rotation applies without a new config).
func ClientConfig(src Source, authorize Authorizer, opts ClientOptions) *tls.Config {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var system *x509.CertPool
	if opts.SystemRoots {
		system, _ = x509.SystemCertPool()
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         opts.ServerName,
		InsecureSkipVerify: true, // verification happens in VerifyConnection below
		ClientSessionCache: opts.SessionCache,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &src.Bundle().Certificate, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if opts.SkipVerify {
				return nil
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("certload: server presented no certificate")
			}
			leaf, inter := cs.PeerCertificates[0], cs.PeerCertificates[1:]
			err := VerifyChain(leaf, inter, src.Bundle().Roots, x509.ExtKeyUsageServerAuth, now())
			if err != nil && system != nil {
				err = VerifyChain(leaf, inter, system, x509.ExtKeyUsageServerAuth, now())
			}
			if err != nil {
				return fmt.Errorf("certload: server certificate: %w", err)
			}
			if err := checkRevoked(opts.CRL, leaf); err != nil {
				return fmt.Errorf("certload: server certificate: %w", err)
			}
			return authorize.authorize(leaf)
		},
	}
}

// checkRevoked refuses leaf when crl (nil: none) lists it.
func checkRevoked(crl CRLSource, leaf *x509.Certificate) error {
	if crl == nil || !crl.Revocations().IsRevoked(leaf) {
		return nil
	}
	return fmt.Errorf("%w (serial %s, issuer %s)", ErrRevoked, serialText(leaf.SerialNumber), leaf.Issuer)
}

// serialText formats a serial as openssl and certgen print it.
func serialText(n *big.Int) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprintf("%X", n.Bytes())
}
