#!/usr/bin/env bash
# serve_clients.sh - real clients against a real `pgfault serve`: psql over
# TCP and the unix socket with every auth method, the exact wrong-password
# text, pgbench -M simple/extended/prepared and -C (reconnect per
# transaction), then SIGTERM: exit 0 and the socket file removed.
# Bounded: every client runs under `timeout`, pgbench with -t.
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
. "$(dirname "$0")/serve_lib.bash"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-XXXXXX")
serve_trap "$tmp"
start_serve "$tmp" --user scramu:scram-pw:scram-sha-256 --user trusty::trust \
    --user pwu:pw-pw:password --user md5u:md5-pw:md5 --database appdb
echo "serve: tcp 127.0.0.1:$SERVE_PORT, unix $SERVE_SOCK"

export PGCONNECT_TIMEOUT=10 PGSSLMODE=prefer PGGSSENCMODE=disable
unset PGSERVICE PGOPTIONS PGDATABASE PGUSER PGHOST PGPORT || true

# psql: every method over both transports.
for host in 127.0.0.1 "$tmp"; do
    for cred in trusty: pwu:pw-pw md5u:md5-pw scramu:scram-pw; do
        user=${cred%%:*}
        pw=${cred#*:}
        out=$(PGPASSWORD=$pw timeout 10 psql -X -w -At -h "$host" -p "$SERVE_PORT" -U "$user" -d appdb \
            -c 'SELECT 42' -c 'SHOW session_authorization' 2>&1) ||
            fail "psql as $user via $host: $out"
        [ "$out" = $'42\n'"$user" ] || fail "psql as $user via $host printed: $out"
    done
done
echo "psql: 4 auth methods x 2 transports ok"

# Wrong password: psql prints exactly what it prints for PostgreSQL, exit 2.
for user in pwu md5u scramu; do
    rc=0
    out=$(PGPASSWORD=wrong timeout 10 psql -X -w -At -h 127.0.0.1 -p "$SERVE_PORT" -U "$user" -d appdb \
        -c 'SELECT 1' 2>&1) || rc=$?
    want="psql: error: connection to server at \"127.0.0.1\", port $SERVE_PORT failed: FATAL:  password authentication failed for user \"$user\""
    [ "$rc" -eq 2 ] || fail "wrong password for $user: psql exit $rc (want 2)"
    [ "$out" = "$want" ] || fail "wrong password for $user:
 got:  $out
 want: $want"
done
rc=0
out=$(PGPASSWORD=wrong timeout 10 psql -X -w -h "$tmp" -p "$SERVE_PORT" -U scramu -d appdb -c 'SELECT 1' 2>&1) || rc=$?
want="psql: error: connection to server on socket \"$SERVE_SOCK\" failed: FATAL:  password authentication failed for user \"scramu\""
[ "$rc" -eq 2 ] && [ "$out" = "$want" ] || fail "wrong password over unix socket: exit $rc, got: $out"
# Unknown database.
rc=0
out=$(timeout 10 psql -X -w -h 127.0.0.1 -p "$SERVE_PORT" -U trusty -d nodb -c 'SELECT 1' 2>&1) || rc=$?
[ "$rc" -eq 2 ] && [ "$out" = "psql: error: connection to server at \"127.0.0.1\", port $SERVE_PORT failed: FATAL:  database \"nodb\" does not exist" ] ||
    fail "unknown database: exit $rc, got: $out"
echo "psql: wrong password / unknown database texts exact"

# pgbench: the script text is sent verbatim (incl. ';').
echo 'SELECT 1;' >"$tmp/select1.sql"
bench() {
    local what=$1
    shift
    local out rc=0
    out=$(PGPASSWORD=scram-pw timeout 120 pgbench -n -f "$tmp/select1.sql" -U scramu "$@" appdb 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || fail "pgbench $what: exit $rc: $out"
    grep -q "^number of failed transactions: 0" <<<"$out" || fail "pgbench $what: failures: $out"
    grep -q "^number of transactions actually processed: $EXPECT/$EXPECT\$" <<<"$out" ||
        fail "pgbench $what: want $EXPECT transactions processed: $out"
    echo "pgbench $what: $EXPECT/$EXPECT"
}
EXPECT=400
for mode in simple extended prepared; do
    bench "-M $mode tcp" -M "$mode" -c 4 -j 2 -t 100 -h 127.0.0.1 -p "$SERVE_PORT"
    bench "-M $mode unix" -M "$mode" -c 4 -j 2 -t 100 -h "$tmp" -p "$SERVE_PORT"
done
EXPECT=100
bench "-C -M simple" -C -M simple -c 2 -j 1 -t 50 -h 127.0.0.1 -p "$SERVE_PORT"
bench "-C -M prepared unix" -C -M prepared -c 2 -j 1 -t 50 -h "$tmp" -p "$SERVE_PORT"

# The server is still healthy, then SIGTERM: exit 0, socket file gone.
out=$(timeout 10 psql -X -w -At -h 127.0.0.1 -p "$SERVE_PORT" -U trusty -d appdb -c 'SELECT 1') || fail "psql after pgbench"
[ "$out" = 1 ] || fail "psql after pgbench printed $out"
stop_serve "$tmp"
[ ! -e "$SERVE_SOCK" ] || fail "unix socket $SERVE_SOCK still exists after SIGTERM"
echo "serve: SIGTERM -> exit 0, socket removed"
echo "PASS"
