#!/usr/bin/env bash
# differential.sh - the same libpq client sessions (tests/diffclient.c) against
# a real PostgreSQL 15 (scripts/pg-reference, temp dir, free port, stopped at
# the end) and against `pgfault serve`, then diff what the client observed:
# connection status and error texts, transaction status after every step,
# result status, SQLSTATE, message, position, columns (name:type:format),
# values, notices, ParameterStatus values. Then every recorded connect-time
# statement of tests/data/introspection (tests/clients/python/golden_diff.py).
#
# Excluded by design (they legitimately differ): backend PID and cancel key
# (printed as "nonzero"), server_version and version() (never printed), the
# port number in libpq's "connection to server at ..., port N" prefix
# (normalized to PORT), the F/L/R error fields (not printed).
#
# Needs postgresql-15 (server binaries) and, as root, the postgres user; a
# missing server is a FAILURE (scripts/install-deps installs it).
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
: "${PGF_BUILD:?PGF_BUILD must point at the build directory}"
: "${PGF_SRC:?PGF_SRC must point at the source tree}"
here=$(dirname "$0")
. "$here/serve_lib.bash"
client=$PGF_BUILD/tests/pgf_diffclient
[ -x "$client" ] || fail "$client not built"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-diff-XXXXXX")
chmod 0711 "$tmp" # the reference server runs as the postgres user
ref_started=
cleanup() {
    if [ -n "$ref_started" ]; then "$PGF_SRC/scripts/pg-reference" stop "$tmp/ref" || true; fi
    if [ -n "${SERVE_PID:-}" ]; then kill -9 "$SERVE_PID" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$PGF_SRC/scripts/pg-reference" start "$tmp/ref" >"$tmp/ref.out" || fail "cannot start the reference PostgreSQL"
ref_started=1
ref_port=$(awk '$1 == "port" {print $2}' "$tmp/ref.out")
echo "reference PostgreSQL on 127.0.0.1:$ref_port"

mkdir "$tmp/fake"
# Same roles as pg-reference; the first user's method (scram) is what the
# fake challenges unknown roles with, like pg-reference's catch-all hba line.
start_serve "$tmp/fake" --user pgf_scram:pgf_scram_pw:scram-sha-256 --user pgf_trust::trust \
    --user pgf_password:pgf_password_pw:password --user pgf_md5:pgf_md5_pw:md5 \
    --database pgf --database postgres
echo "pgfault serve on 127.0.0.1:$SERVE_PORT"

unset PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT || true
export PGPASSFILE=$tmp/no-such-passfile
normalize() { sed -E 's/port [0-9]+ failed/port PORT failed/g'; }
timeout 120 "$client" 127.0.0.1 "$ref_port" >"$tmp/real.raw" || fail "diffclient against PostgreSQL failed: $(tail -n 5 "$tmp/real.raw")"
timeout 120 "$client" 127.0.0.1 "$SERVE_PORT" >"$tmp/fake.raw" || fail "diffclient against the fake failed: $(tail -n 5 "$tmp/fake.raw")"
normalize <"$tmp/real.raw" >"$tmp/real.txt"
normalize <"$tmp/fake.raw" >"$tmp/fake.txt"
steps=$(grep -c -E '^(connect|query|params|prepare|describe|execute|cancel)' "$tmp/real.txt")
[ "$steps" -gt 60 ] || fail "the transcript is too short ($steps steps): $(cat "$tmp/real.txt")"
if ! diff -u --label postgresql "$tmp/real.txt" --label pgfault "$tmp/fake.txt"; then
    fail "the fake differs from PostgreSQL (- postgresql, + pgfault) above"
fi
echo "differential: $steps client steps identical on PostgreSQL and pgfault"

# The statements application stacks send on connect (tests/data/introspection,
# answered from PostgreSQL's recorded rows): parameter types, row descriptions,
# text and binary rows, errors, in the extended and the simple protocol.
/usr/bin/python3 -c 'import psycopg' 2>/dev/null || fail "psycopg (3) missing (scripts/install-deps)"
golden() {
    timeout 120 /usr/bin/python3 "$PGF_SRC/tests/clients/python/golden_diff.py" \
        "$PGF_SRC/tests/data/introspection" 127.0.0.1 "$1" pgf_scram pgf_scram_pw pgf
}
golden "$ref_port" >"$tmp/golden.real" || fail "golden_diff against PostgreSQL: $(tail -n 5 "$tmp/golden.real")"
golden "$SERVE_PORT" >"$tmp/golden.fake" || fail "golden_diff against the fake: $(tail -n 5 "$tmp/golden.fake")"
if ! diff -u --label postgresql "$tmp/golden.real" --label pgfault "$tmp/golden.fake"; then
    fail "recorded connect-time statements: the fake differs from PostgreSQL (above)"
fi
echo "differential: $(tail -n 1 "$tmp/golden.fake" | awk '{print $2}') executions of recorded connect-time statements identical"
stop_serve "$tmp/fake"
echo PASS
