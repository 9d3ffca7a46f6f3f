// Local identity provider: a Keycloak stand-in for development and tests,
// never deployed. It is the certified `oidc-provider`, configured with
// Keycloak's URL shapes, OAuth 2.0 mutual-TLS client authentication
// (tls_client_auth, RFC 8705 section 2.1) and certificate-bound JWT access
// tokens (cnf.x5t#S256) for the audience ca-a2a-agents.
//
// Environment: CERTS_DIR (./certs), IDP_HOST (keycloak.ca-a2a.local),
// IDP_PORT (8443), IDP_LISTEN_HOST (127.0.0.1), IDP_STATE_DIR (./.local/idp),
// IDP_CLIENTS (lambda,orchestrator), IDP_TOKEN_TTL (300 seconds),
// IDP_RELOAD_INTERVAL (1000 ms).
//
// It trusts the CA bundle (ca/ca-bundle.pem: the current CA, plus the next
// one during a rotation) and re-reads it, and its own certificate and key,
// when they change, as the agents do: a CA rotation needs no restart.
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import Provider from 'oidc-provider';

const env = (name, fallback) => process.env[name] || fallback;
const certsDir = env('CERTS_DIR', './certs');
const host = env('IDP_HOST', 'keycloak.ca-a2a.local');
const port = Number(env('IDP_PORT', '8443'));
const listenHost = env('IDP_LISTEN_HOST', '127.0.0.1');
const stateDir = env('IDP_STATE_DIR', './.local/idp');
const clients = env('IDP_CLIENTS', 'lambda,orchestrator').split(',').map((c) => c.trim()).filter(Boolean);
const tokenTTL = Number(env('IDP_TOKEN_TTL', '300'));
const reloadInterval = Number(env('IDP_RELOAD_INTERVAL', '1000'));
const audience = 'ca-a2a-agents';
const resource = 'urn:ca-a2a:agents';
const prefix = '/realms/ca-a2a';
const issuer = `https://${host}:${port}${prefix}`;
const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';

if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`IDP_PORT ${port} is not a port`);
if (!Number.isInteger(tokenTTL) || tokenTTL < 1) fail(`IDP_TOKEN_TTL ${tokenTTL} is not a positive number of seconds`);
if (!Number.isInteger(reloadInterval) || reloadInterval < 10 || reloadInterval > 60000) fail(`IDP_RELOAD_INTERVAL ${reloadInterval} is not 10..60000 milliseconds`);
for (const c of clients) if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(c)) fail(`invalid client name ${c}`);

function fail(msg) {
  console.error(`idp: ${msg}`);
  process.exit(2);
}

function read(file) {
  try {
    return readFileSync(file);
  } catch (err) {
    fail(`cannot read ${file} (${err.code}); run "make certs" first`);
  }
  return undefined;
}

// The signing key is made at first start and kept, so that tokens and cached
// JWKS stay valid across restarts.
function signingKey() {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const file = path.join(stateDir, 'signing-key.jwk.json');
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'ES256', use: 'sig' };
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(jwk), { mode: 0o600 });
    renameSync(tmp, file);
  }
  chmodSync(file, 0o600); // a key copied in with a looser mode is tightened, not trusted as is
  let jwk;
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    jwk = undefined;
  }
  // Never echo the file: it holds the private key.
  if (jwk?.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.d || !jwk.kid) fail(`${file} is not an EC P-256 private JWK with a kid; remove it to generate a new key`);
  return { ...jwk, alg: 'ES256', use: 'sig' };
}

// RFC 4514 form of a certificate subject, most specific RDN first, as
// tls_client_auth_subject_dn is written: "CN=lambda.ca-a2a.local,O=CA A2A,C=FR".
function subjectDN(cert) {
  const escape = (v) => v.replace(/([,+"\\<>;])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
  return cert.subject.split('\n').reverse().map((rdn) => {
    const i = rdn.indexOf('=');
    return `${rdn.slice(0, i)}=${escape(rdn.slice(i + 1))}`;
  }).join(',');
}

// The presented certificate, only when it chains to the project CA and may
// be used for client authentication.
function peerCertificate(ctx) {
  const socket = ctx.req.socket;
  if (!socket.authorized) return undefined;
  const raw = socket.getPeerX509Certificate?.();
  if (!raw) return undefined;
  const cert = raw instanceof X509Certificate ? raw : new X509Certificate(raw.raw);
  if (Array.isArray(cert.keyUsage) && !cert.keyUsage.includes(CLIENT_AUTH_EKU)) return undefined;
  return cert;
}

const provider = new Provider(issuer, {
  clients: clients.map((name) => ({
    client_id: name,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: `CN=${name}.ca-a2a.local,O=CA A2A,C=FR`,
    tls_client_certificate_bound_access_tokens: true,
    id_token_signed_response_alg: 'ES256',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
  clientAuthMethods: ['tls_client_auth'],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  routes: {
    token: '/protocol/openid-connect/token',
    jwks: '/protocol/openid-connect/certs',
    introspection: '/protocol/openid-connect/token/introspect',
    revocation: '/protocol/openid-connect/revoke',
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: peerCertificate,
      certificateAuthorized: (ctx) => peerCertificate(ctx) !== undefined,
      certificateSubjectMatches: (ctx, property, expected) => {
        const cert = peerCertificate(ctx);
        return property === 'tls_client_auth_subject_dn' && cert !== undefined && subjectDN(cert) === expected;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new Provider.errors.InvalidTarget();
        return { scope: '', audience, accessTokenFormat: 'jwt', accessTokenTTL: tokenTTL, jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ azp: token.clientId }),
  ttl: { ClientCredentials: tokenTTL },
});

provider.on('server_error', (ctx, err) => console.error(`idp: server error: ${err.message}`));
provider.on('grant.error', (ctx, err) => {
  // Why TLS did not vouch for the client, when it did not: the OpenSSL
  // verification code (UNABLE_TO_GET_ISSUER_CERT_LOCALLY, CERT_HAS_EXPIRED, ...).
  const sock = ctx.req.socket;
  const tls = sock.authorized ? '' : `; client certificate: ${sock.authorizationError?.code || sock.authorizationError || 'none'}`;
  console.error(`idp: token refused: ${err.error} (${err.error_description}${tls})`);
});

// The TLS material: the provider's certificate and key, and the CA bundle
// client certificates must chain to.
const tlsFiles = {
  cert: path.join(certsDir, 'agents/keycloak/keycloak-cert.pem'),
  key: path.join(certsDir, 'agents/keycloak/keycloak-key.pem'),
  ca: path.join(certsDir, 'ca/ca-bundle.pem'),
};

function tlsMaterial() {
  return { cert: read(tlsFiles.cert), key: read(tlsFiles.key), ca: read(tlsFiles.ca), minVersion: 'TLSv1.2' };
}

// What identifies a version of the files without reading them.
function tlsStamp() {
  return Object.values(tlsFiles).map((f) => {
    try {
      const st = statSync(f);
      return `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch (err) {
      return `missing:${err.code}`;
    }
  }).join('|');
}

const callback = provider.callback();
let stamp = tlsStamp();
const server = https.createServer({
  ...tlsMaterial(),
  requestCert: true, // verified per request: discovery and JWKS are public
  rejectUnauthorized: false,
}, (req, res) => {
  // Mount the provider under /realms/ca-a2a, as Keycloak's URLs are.
  if (req.url === prefix || req.url.startsWith(`${prefix}/`) || req.url.startsWith(`${prefix}?`)) {
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    // Endpoint URLs in discovery come from the issuer, whatever host the
    // client dialled (Keycloak with a fixed KC_HOSTNAME does the same).
    req.headers.host = `${host}:${port}`;
    callback(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not_found"}');
});
server.headersTimeout = 10000;
server.requestTimeout = 30000;

// New connections get new material as soon as it is complete; connections
// in flight keep theirs. A set that does not load (a key written before its
// certificate) is reported and the previous one keeps serving; the same
// files are tried again when they change.
setInterval(() => {
  const now = tlsStamp();
  if (now === stamp) return;
  stamp = now;
  let material;
  try {
    material = {
      cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key), ca: readFileSync(tlsFiles.ca), minVersion: 'TLSv1.2',
    };
    server.setSecureContext(material);
  } catch (err) {
    // The message names the file or the mismatch, never the contents.
    console.error(`idp: TLS material not reloaded, the previous one keeps serving: ${err.code || err.message}`);
    return;
  }
  const leaf = new X509Certificate(material.cert);
  console.log(`idp: TLS material reloaded: certificate serial ${leaf.serialNumber} valid to ${leaf.validTo}; CA bundle ${tlsFiles.ca}`);
}, reloadInterval).unref();

server.on('error', (err) => fail(`cannot listen on ${listenHost}:${port}: ${err.code || err.message}`));
server.listen(port, listenHost, () => {
  console.log(`idp: listening on https://${listenHost}:${port} issuer=${issuer} clients=${clients.join(',')}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
