// Package realmcheck holds only a test: it loads the production Keycloak
// realm (infra/keycloak/realm-ca-a2a.json) and checks every setting the
// certificate binding depends on, so a broken realm never ships.
package realmcheck
