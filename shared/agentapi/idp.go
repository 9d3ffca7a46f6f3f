package agentapi

// Identity provider defaults. Keycloak's URL shapes are the contract: the
// local identity provider (dev/idp) serves the same paths.
const (
	// RealmPath is the realm's path under the identity provider's base URL.
	RealmPath = "/realms/ca-a2a"
	// DefaultIssuer is the exact iss of every token (OIDC_ISSUER).
	DefaultIssuer = "https://keycloak.ca-a2a.local:8443" + RealmPath
	// DefaultAudience must be one of a token's aud values (OIDC_AUDIENCE).
	DefaultAudience = "ca-a2a-agents"
)

// TokenEndpoint returns the token endpoint of issuer (no trailing slash).
func TokenEndpoint(issuer string) string { return issuer + "/protocol/openid-connect/token" }

// JWKSEndpoint returns where issuer publishes its signing keys.
func JWKSEndpoint(issuer string) string { return issuer + "/protocol/openid-connect/certs" }
