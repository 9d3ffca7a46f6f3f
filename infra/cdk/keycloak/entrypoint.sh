#!/bin/bash
# Keycloak reads its TLS certificate, key and trust store from files; ECS
# injects them from Secrets Manager (ca-a2a/keycloak-cert, ca-a2a/keycloak-key,
# ca-a2a/ca-cert) as environment variables. Write them to a private directory,
# drop the variables and hand over to kc.sh.
set -euo pipefail

for v in CA_A2A_TLS_CERT CA_A2A_TLS_KEY CA_A2A_TLS_CA; do
  if [ -z "${!v:-}" ]; then
    echo "ca-a2a-entrypoint: $v is empty (run certgen publish before starting Keycloak)" >&2
    exit 1
  fi
done

umask 077
dir=$(mktemp -d /tmp/ca-a2a-tls.XXXXXX 2>/dev/null) || { dir=/tmp/ca-a2a-tls.$$ && mkdir -m 700 "$dir"; }
printf '%s\n' "$CA_A2A_TLS_CERT" >"$dir/tls-cert.pem"
printf '%s\n' "$CA_A2A_TLS_KEY" >"$dir/tls-key.pem"
printf '%s\n' "$CA_A2A_TLS_CA" >"$dir/ca-cert.pem"
unset CA_A2A_TLS_CERT CA_A2A_TLS_KEY CA_A2A_TLS_CA

export KC_HTTPS_CERTIFICATE_FILE="$dir/tls-cert.pem"
export KC_HTTPS_CERTIFICATE_KEY_FILE="$dir/tls-key.pem"
# Client certificates (tls_client_auth) are verified against the project CA
# only; outgoing TLS trusts it as well.
export KC_HTTPS_TRUST_STORE_FILE="$dir/ca-cert.pem"
export KC_TRUSTSTORE_PATHS="$dir/ca-cert.pem"

exec "${CA_A2A_KC_SH:-/opt/keycloak/bin/kc.sh}" "$@"
