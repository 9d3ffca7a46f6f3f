package certload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ServerOptions tune ServerConfig.
type ServerOptions struct {
	// RequireClientCert makes the handshake fail without a client
	// certificate (MTLS_REQUIRE_CLIENT_CERT). When false a certificate is
	// still requested, and verified when one is presented.
	RequireClientCert bool
	// Authorize, when set, decides which verified clients may connect.
	Authorize Authorizer
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// ServerConfig returns the tls.Config of an mTLS server. The server
// certificate and the CA pool come from src at every handshake, so a
// rotation applies to the next connection and leaves those in flight alone.
// Client certificates are verified in VerifyConnection, which also runs on
// resumed sessions: they must chain to the CA, be inside their validity
// window and carry clientAuth.
func ServerConfig(src Source, opts ServerOptions) *tls.Config {
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
			if opts.Authorize != nil {
				return opts.Authorize(leaf)
			}
			return nil
		},
	}
}

// ClientOptions tune ClientConfig.
type ClientOptions struct {
	// SkipVerify turns off every check of the server (MTLS_VERIFY_SERVER=false).
	// Never use it outside a lab.
	SkipVerify bool
	// SystemRoots also trusts the system roots next to the CA (used for the
	// identity provider, which may carry a public certificate).
	SystemRoots bool
	// Authorize, when set, runs after the chain and name checks.
	Authorize Authorizer
	// SessionCache enables TLS session resumption; nil disables it.
	SessionCache tls.ClientSessionCache
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// ClientConfig returns the tls.Config of an mTLS client that presents the
// certificate of src and accepts only a server whose certificate chains to
// the CA and carries serverName in its SANs, whatever address was dialed:
// local runs dial 127.0.0.1 and still verify "orchestrator.ca-a2a.local".
//
// The standard verification is replaced by VerifyConnection (it also runs on
// resumed sessions, and reads the CA pool from src at each handshake so a CA
// rotation applies without a new config).
func ClientConfig(src Source, serverName string, opts ClientOptions) *tls.Config {
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
		ServerName:         serverName,
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
			err := verifyServer(leaf, inter, src.Bundle().Roots, serverName, now())
			if err != nil && system != nil {
				err = verifyServer(leaf, inter, system, serverName, now())
			}
			if err != nil {
				return err
			}
			if opts.Authorize != nil {
				return opts.Authorize(leaf)
			}
			return nil
		},
	}
}

func verifyServer(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, name string, now time.Time) error {
	if err := VerifyChain(leaf, intermediates, roots, x509.ExtKeyUsageServerAuth, now); err != nil {
		return fmt.Errorf("certload: server certificate: %w", err)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("%w: server certificate is not valid for %q", ErrUnauthorizedPeer, name)
	}
	return nil
}
