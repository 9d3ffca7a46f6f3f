#!/usr/bin/env bash
# Install the identity provider's npm packages from the lockfile (npm ci)
# unless the install in node_modules was made from this very lockfile. The
# stamp and the lock are shared with run.sh and the Go test helper
# internal/testutil/idp, so no two ever install at once and none reinstalls
# what another one installed.
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
