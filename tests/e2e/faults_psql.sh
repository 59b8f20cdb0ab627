#!/usr/bin/env bash
# faults_psql.sh - `pgfault serve --faults scenarios/faults-examples.yaml
# --control 127.0.0.1:0` against real psql: the documented examples give
# psql's exact stderr; rules are added with curl and listed, removed and
# reset with `pgfault faults`; at SIGTERM the coverage line names the rules
# that fired and those that never did.
#
# Bounded: every psql has connect_timeout and a timeout(1); the server is
# stopped by the EXIT trap whatever happens. 127.0.0.1 and a temp dir only.
set -euo pipefail
: "${PGFAULT:?PGFAULT must name the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must name the source tree}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
command -v psql >/dev/null || fail "psql is not installed (scripts/install-deps)"
command -v curl >/dev/null || fail "curl is not installed (scripts/install-deps)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-faults-psql.XXXXXX")
serve_trap "$TMP"
start_serve "$TMP" --user alice:apw:password --faults "$PGF_SRC/scenarios/faults-examples.yaml" \
    --control 127.0.0.1:0 --seed 7
CONTROL=$(sed -n 's|^control http://||p' "$TMP/serve.out")
[ -n "$CONTROL" ] || fail "no 'control http://...' line in: $(cat "$TMP/serve.out")"
P=$SERVE_PORT
CLOSED='server closed the connection unexpectedly
	This probably means the server terminated abnormally
	before or while processing the request.'

# run_psql APP SQL...: psql as alice over TCP; sets OUT, ERR, RC.
run_psql() {
    local app=$1
    shift
    local args=()
    local q
    for q in "$@"; do args+=(-c "$q"); done
    RC=0
    PGPASSWORD=apw PGCONNECT_TIMEOUT=5 timeout 20 psql -X -w -At \
        "host=127.0.0.1 port=$P user=alice dbname=app sslmode=disable gssencmode=disable application_name=$app" \
        "${args[@]}" >"$TMP/psql.out" 2>"$TMP/psql.err" || RC=$?
    OUT=$(cat "$TMP/psql.out")
    ERR=$(cat "$TMP/psql.err")
}

# expect_err WHAT WANT_RC WANT_STDERR
expect_err() {
    [ "$RC" = "$2" ] || fail "$1: psql exited $RC, want $2 (stderr: $ERR)"
    [ "$ERR" = "$3" ] || fail "$1: psql stderr
--- got
$ERR
--- want
$3"
}

# Connection numbers matter: ex-refuse refuses connection 2 only.
# 1: ex-auth-fail rejects alice's password once in the run.
run_psql plain 'SELECT 1'
expect_err auth-fail 2 "psql: error: connection to server at \"127.0.0.1\", port $P failed: FATAL:  password authentication failed for user \"alice\""
# 2: ex-refuse: accepted, then closed at once.
run_psql plain 'SELECT 1'
expect_err refuse 2 "psql: error: connection to server at \"127.0.0.1\", port $P failed: $CLOSED"
# 3: the same password works now (times: 1, scope: global).
run_psql plain 'SELECT 1'
expect_err after-auth-fail 0 ""
[ "$OUT" = "1" ] || fail "SELECT 1 printed '$OUT'"
# ex-admin-shutdown: the 3rd query of the connection gets FATAL 57P01.
run_psql ex-admin-shutdown 'SELECT 1' 'SELECT 2' 'SELECT 3'
expect_err admin-shutdown 2 "FATAL:  terminating connection due to administrator command
$CLOSED
connection to server was lost"
[ "$OUT" = "1
2" ] || fail "admin-shutdown: the first two queries printed '$OUT'"
# ex-crash-shutdown: WARNING notice (DETAIL, HINT) while idle, then EOF.
run_psql ex-crash 'SELECT 1'
expect_err crash-shutdown 2 "WARNING:  terminating connection because of crash of another server process
DETAIL:  The postmaster has commanded this server process to roll back the current transaction and exit, because another server process exited abnormally and possibly corrupted shared memory.
HINT:  In a moment you should be able to reconnect to the database and repeat your command.
$CLOSED
connection to server was lost"
# ex-truncate: 3 bytes of the DataRow, then RST.
run_psql ex-truncate 'SELECT 1'
expect_err truncate 2 "$CLOSED
connection to server was lost"
# ex-close: FIN right after the startup message.
run_psql ex-close 'SELECT 1'
expect_err close 2 "psql: error: connection to server at \"127.0.0.1\", port $P failed: $CLOSED"

# --- the control API: curl adds, pgfault faults lists/removes/resets ---
code=$(curl -s -o "$TMP/add.json" -w '%{http_code}' -X POST "http://$CONTROL/rules" \
    -d '{"name":"e2e-auth","phase":"startup","match":{"application_name":"e2e"},"action":"error","preset":"too-many-clients"}')
[ "$code" = 201 ] || fail "POST /rules: $code $(cat "$TMP/add.json")"
run_psql e2e 'SELECT 1'
expect_err curl-rule 2 "psql: error: connection to server at \"127.0.0.1\", port $P failed: FATAL:  sorry, too many clients already"
# a bad rule: 400 naming the key, and the rule set is unchanged
before=$("$PGFAULT" faults --control "$CONTROL" list)
code=$(curl -s -o "$TMP/bad.json" -w '%{http_code}' -X POST "http://$CONTROL/rules" \
    -d '{"name":"x","phase":"query","action":"close","probabilty":1}')
[ "$code" = 400 ] || fail "bad POST /rules: $code"
grep -q "probabilty" "$TMP/bad.json" || fail "400 body does not name the key: $(cat "$TMP/bad.json")"
after=$("$PGFAULT" faults --control "$CONTROL" list)
[ "$before" = "$after" ] || fail "a rejected request changed the rules"
echo "$after" | grep -q '"e2e-auth"' || fail "pgfault faults list lacks e2e-auth: $after"
"$PGFAULT" faults --control "$CONTROL" coverage >"$TMP/cov1.json"
grep -q '"never_fired"' "$TMP/cov1.json" || fail "coverage: $(cat "$TMP/cov1.json")"
"$PGFAULT" faults --control "$CONTROL" remove e2e-auth >/dev/null
run_psql e2e 'SELECT 1'
expect_err after-remove 0 ""
rc=0
"$PGFAULT" faults --control "$CONTROL" remove e2e-auth >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "removing a missing rule exited $rc, want 2"
"$PGFAULT" faults --control "$CONTROL" reset >/dev/null
[ "$("$PGFAULT" faults --control "$CONTROL" list | tr -d ' \n')" = "[]" ] || fail "rules left after reset"
# after the reset: one rule that fires, one that never does
"$PGFAULT" faults --control "$CONTROL" add \
    '[{"name":"late-close","phase":"query","match":{"application_name":"late"},"action":"close"},
      {"name":"never-hit","phase":"cancel","action":"none"}]' >/dev/null
run_psql late 'SELECT 1'
expect_err late-close 2 "$CLOSED
connection to server was lost"

stop_serve "$TMP"
cov=$(sed -n 's/^coverage //p' "$TMP/serve.out")
[ -n "$cov" ] || fail "no coverage line at exit: $(cat "$TMP/serve.out")"
echo "$cov" | python3 -c '
import json, sys
c = json.load(sys.stdin)
rules = {r["name"]: r["fired"] for r in c["rules"]}
assert rules == {"late-close": 1, "never-hit": 0}, rules
assert c["never_fired"] == ["never-hit"], c["never_fired"]
assert {"phase": "query", "action": "close", "count": 1} in c["fired"], c["fired"]
' || fail "coverage line: $cov"
echo "ok: faults_psql"
