// Package certload loads the certificate, private key and CA bundle an agent
// or the Lambda authenticates with, validates them, and builds the server and
// client tls.Config of every mTLS hop.
//
// The material comes from a Source: PEM files (re-read when they change, so a
// rotated certificate is picked up without a restart), PEM contents from the
// environment (ECS injects them from Secrets Manager), or Secrets Manager
// itself (three secrets fetched in one BatchGetSecretValue call). Whatever the
// source, a Bundle is only ever published after it has been validated: the key
// matches the certificate, the certificate is inside its validity window,
// chains to the CA and carries the extended key usages its role needs.
//
// The tls.Config builders never capture a certificate or a CA pool: they ask
// the Source at every handshake, and verify peers in VerifyConnection, which
// also runs on resumed sessions. Both take a required Authorizer: the chain
// and key usage are checked here, who the peer must be is the caller's
// decision (an agent name for agents, a host name for the identity
// provider).
//
// Revocation: ParseCRLs verifies a CRL file against the CAs of a bundle,
// and CRLWatcher keeps the list of MTLS_CRL_PATH, MTLS_CRL or
// MTLS_CRL_SECRET_ID current (the file re-read when it changes, the secret
// fetched again every MTLS_CRL_REFRESH, the list checked again when the CA
// bundle changes; a list that does not verify, or cannot be read, is
// refused while the previous one stays in force). The tls.Config builders refuse a revoked peer when given a
// CRLSource; CheckPeer repeats the checks that can change while a
// connection is open (validity, CA still trusted, revocation) cheaply
// enough for every request. The CAs of a rotation share one name;
// certificates and lists are matched to their CA by key identifier and
// signature, never by name alone.
package certload
