#!/usr/bin/env bash
# Start the local identity provider in the foreground, its npm packages
# installed first when missing or made from another lockfile (install.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/install.sh"
exec node "$here/server.js"
