#!/usr/bin/env bash
# make bench: install nginx for the reference row when it is missing and we
# are root (Debian/Ubuntu), then run the measurements and write
# bench/results/results.md and results.json. Extra arguments go to the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing nginx for the reference row (apt-get)" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }; then
      echo "bench: nginx could not be installed; row 6 will be skipped" >&2
    fi
  else
    echo "bench: nginx is missing and this is not a root shell with apt-get; row 6 will be skipped" >&2
  fi
fi
# Rows 7 and 13 start a throwaway PostgreSQL cluster (internal/pgcluster);
# without the server programs they are skipped (they fail when CI is set).
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "bench: PostgreSQL's server programs are missing (apt-get install postgresql); rows 7 and 13 will be skipped" >&2
fi
# Rows 10a, 10b and 11 to 13 build cmd/agent and this command with go build
# and load the agents from a child process (bench load): nothing to install
# (wrk cannot present the client certificate every agent requires).
exec "${GO:-go}" run ./bench/cmd/bench "$@"
