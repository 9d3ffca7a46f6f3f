#!/usr/bin/env bash
# Start the local identity provider in the foreground. Its npm packages are
# installed from the lockfile (npm ci) on first use and whenever
# package-lock.json changes; the stamp and the lock are shared with the Go
# test helper internal/testutil/idp, so the two never install at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
stamp="$here/node_modules/.ca-a2a-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (
    flock 9
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
      printf '%s\n' "$want" >"$stamp"
    fi
  ) 9>"$here/.install.lock"
fi
exec node "$here/server.js"
