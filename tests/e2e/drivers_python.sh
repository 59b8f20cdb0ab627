#!/usr/bin/env bash
# drivers_python.sh - psycopg2 and asyncpg (Debian's /usr/bin/python3) against
# `pgfault serve`: connect with SCRAM over TCP and the unix socket, SELECT 1,
# parameters, transactions, cancel of pg_sleep, wrong password. The drivers
# are installed by scripts/install-deps; a missing one is a FAILURE, not a skip.
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
here=$(dirname "$0")
. "$here/serve_lib.bash"
PY=/usr/bin/python3
[ -x "$PY" ] || fail "$PY not found (scripts/install-deps installs python3)"
"$PY" -c 'import psycopg2, asyncpg' 2>/dev/null ||
    fail "psycopg2 or asyncpg missing for $PY (scripts/install-deps installs python3-psycopg2 python3-asyncpg)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-XXXXXX")
serve_trap "$tmp"
start_serve "$tmp" --user scramu:scram-pw:scram-sha-256 --database appdb
PGSSLMODE=disable PGGSSENCMODE=disable timeout 180 "$PY" "$here/drivers_python.py" 127.0.0.1 "$SERVE_PORT" "$tmp"
stop_serve "$tmp"
