package binding

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net"
	"sync/atomic"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// thumbprintLen is the length of an x5t#S256: 32 bytes in base64url
// without padding.
const thumbprintLen = 43

// peerFacts is what the chain derives from one client certificate: its
// x5t#S256 and the agent it names. It is immutable once built.
type peerFacts struct {
	cert   *x509.Certificate
	thumb  [thumbprintLen]byte
	caller string
	idErr  error
}

func newPeerFacts(cert *x509.Certificate) *peerFacts {
	f := &peerFacts{cert: cert}
	thumbprint(&f.thumb, cert)
	f.caller, f.idErr = agentapi.Identity(cert)
	return f
}

// thumbprint writes the x5t#S256 of cert into dst.
func thumbprint(dst *[thumbprintLen]byte, cert *x509.Certificate) {
	sum := sha256.Sum256(cert.Raw)
	base64.RawURLEncoding.Encode(dst[:], sum[:])
}

// connPeer remembers the facts of the certificate a connection presented.
// Requests of one connection may run concurrently (HTTP/2): the facts are
// swapped atomically, never changed in place.
type connPeer struct{ facts atomic.Pointer[peerFacts] }

type connKey struct{}

// ConnContext is an http.Server ConnContext: it gives each connection a
// place where the chain keeps what it derived from the connection's client
// certificate (its thumbprint and agent identity), so that they are
// computed on the connection's first request instead of on every request.
// They are kept with the certificate they came from and used only for a
// request that presents that very certificate (the same
// *x509.Certificate), so a memo can never answer for another certificate;
// the token's binding is still compared, in constant time, on every
// request. The agent server installs it; without it every request
// computes them again.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, new(connPeer))
}

// peer returns the facts of cert, from the connection's memo when ctx
// carries one (ConnContext) and it is about this certificate.
func peer(ctx context.Context, cert *x509.Certificate) *peerFacts {
	c, _ := ctx.Value(connKey{}).(*connPeer)
	if c != nil {
		if f := c.facts.Load(); f != nil && f.cert == cert {
			return f
		}
	}
	f := newPeerFacts(cert)
	if c != nil {
		c.facts.Store(f)
	}
	return f
}
