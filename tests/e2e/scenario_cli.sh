#!/usr/bin/env bash
# scenario_cli.sh - scenario files and `pgfault run` around them:
#  - every invalid fixture in tests/data/scenarios exits 2 with the exact
#    file:line:col message, and no run starts (no output directory);
#  - --explain prints the resolved scenario with every default spelled out;
#  - `pgfault replay OUT/report.json` reproduces a sim run's history byte for
#    byte (same digest);
#  - --shrink on a broken variant writes a smaller scenario that parses and
#    still fails.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
DATA="$PGF_SRC/tests/data/scenarios"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-scn.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# ---- invalid scenario files: exit 2, exact message, nothing run ----
check_invalid() { # FILE MESSAGE
    local f=$1 want="pgfault run: $1:$2"
    (cd "$DATA" && "$PGFAULT" run "$f" --out "$TMP/inv-out") >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ "$rc" = 2 ] || fail "$f: exit $rc, want 2"
    [ "$(cat "$TMP/err")" = "$want" ] || fail "$f: stderr is '$(cat "$TMP/err")', want '$want'"
    [ ! -e "$TMP/inv-out" ] || fail "$f: a run started (output directory exists)"
    rm -rf "$TMP/inv-out"
}
check_invalid invalid-unknown-key.yaml "4:3: unknown key 'sesions' in 'workload' (expected one of: sessions, threads, iterations, duration_ms, query, think_ms, connect_timeout_ms, query_timeout_ms, pool, explore)"
check_invalid invalid-wrong-type.yaml "4:13: 'sessions' must be an integer in [1, 100000], got 'many'"
check_invalid invalid-out-of-range.yaml "5:49: 'probability' out of range: 1.5 (expected 0..1)"
check_invalid invalid-missing-required.yaml "2:1: a scenario needs 'name'"
check_invalid invalid-bad-fault-rule.yaml "5:12: unknown phase 'data-rows' in rule 'cut' (did you mean 'data-row'? expected one of: accept, ssl-request, startup, auth-request, auth-response, sasl-continue, sasl-final, auth-ok, parameter-status, ready, query, row-description, data-row, command-complete, idle, cancel, terminate)"
check_invalid invalid-external-sim.yaml "4:20: 'server.external' needs 'mode: stress' (sim mode runs the embedded server on its own virtual clock)"
check_invalid invalid-target-range.yaml "7:17: 'timeout_ms' out of range: 99999999 (expected 1..600000)"
check_invalid invalid-racer-state.yaml "5:30: racer 'r': unknown state 'CONNECTING_TLS' (expected one of: NEW, CONNECTING_SOCKET, CONNECTING_SSL, CONNECTING_STARTUP, CONNECTING_AUTH, CONNECTING_PARAMS, READY, BUSY, CANCELING, CLOSING, FAILED, CLOSED)"
n=$(ls "$DATA"/invalid-*.yaml | wc -l)
[ "$n" = 8 ] || fail "expected 8 invalid fixtures, found $n (add the new one here)"

# ---- a dead upstream: the conninfo given is the one used, every check
# unreachable fails the run (exit 1) naming the masked address, no password anywhere ----
printf 'name: dead\nmode: stress\nserver: {external: "host=127.0.0.1 port=1 user=x password=hunter2 dbname=x"}\nworkload: {sessions: 2, iterations: 2}\n' >"$TMP/dead.yaml"
timeout 60 "$PGFAULT" run "$TMP/dead.yaml" --out "$TMP/dead" --quiet 2>"$TMP/dead.err"
rc=$?
[ "$rc" = 1 ] || fail "dead upstream: exit $rc, want 1 (nothing was tested)"
grep -q "every health check (4) found the external server unreachable (host=127.0.0.1 port=1 user=x password=\*\*\*\* dbname=x)" \
    "$TMP/dead.err" || fail "dead upstream: no error naming the masked server: $(cat "$TMP/dead.err")"
! grep -r -q hunter2 "$TMP/dead" "$TMP/dead.err" || fail "dead upstream: the password appears in the output"
/usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["scenarios"][0]; assert s["outcomes"]["unreachable"] == 4, s["outcomes"]' \
    "$TMP/dead/report.json" || fail "dead upstream: checks not classified unreachable"
# the history names the address the checks really went to (not libpq's default socket)
grep -q '127.0.0.1' "$TMP/dead/history.jsonl" || fail "dead upstream: the checks did not go to 127.0.0.1:1"
timeout 60 "$PGFAULT" run "$TMP/dead.yaml" --mode sim --out "$TMP/dead-sim" >/dev/null 2>&1
[ $? = 2 ] || fail "dead upstream: --mode sim with an external server must exit 2"

# ---- --explain: defaults printed ----
printf 'name: minimal\n' >"$TMP/minimal.yaml"
"$PGFAULT" run "$TMP/minimal.yaml" --explain >"$TMP/explain" 2>&1 || fail "--explain exit $?"
for line in "seed: 1" "mode: sim" "  sessions: 10" "  iterations: 10" "  think_ms: 10" \
    "  connect_timeout_ms: 5000" "  query_timeout_ms: 5000" '  query: "SELECT 1"' \
    "  transport: tcp" "  violations: none" '  database: "postgres"'; do
    grep -qxF -- "$line" "$TMP/explain" || fail "--explain lacks default '$line'"
done
# the explained YAML is itself a valid scenario
sed -n '/^name:/,$p' "$TMP/explain" >"$TMP/explained.yaml"
"$PGFAULT" run "$TMP/explained.yaml" --explain >/dev/null 2>&1 || fail "--explain output does not parse"

# ---- replay reproduces a sim run ----
"$PGFAULT" run --scenario midquery-close-reset --out "$TMP/r1" >"$TMP/r1.log" 2>&1 ||
    fail "midquery-close-reset: exit $?"
"$PGFAULT" replay "$TMP/r1/report.json" --out "$TMP/r2" >"$TMP/r2.log" 2>&1 || fail "replay: exit $?"
d1=$(grep -o 'digest [0-9a-f]*' "$TMP/r1.log")
d2=$(grep -o 'digest [0-9a-f]*' "$TMP/r2.log")
[ -n "$d1" ] && [ "$d1" = "$d2" ] || fail "replay digest '$d2' differs from the run's '$d1'"
cmp -s "$TMP/r1/history.jsonl" "$TMP/r2/history.jsonl" || fail "replay history differs"

# ---- --shrink on a broken variant ----
"$PGFAULT" run --scenario incident --bugs close-frees-during-connect --sessions 6 --iterations 4 \
    --shrink --out "$TMP/s" >"$TMP/s.log" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "shrink run: exit $rc, want 1"
shrunk="$TMP/s/incident.shrunk.yaml"
if [ -s "$shrunk" ]; then
    "$PGFAULT" run "$shrunk" --explain >"$TMP/shrunk.explain" 2>&1 || fail "shrunk scenario does not parse"
    s=$(sed -n 's/^  sessions: //p' "$TMP/shrunk.explain")
    i=$(sed -n 's/^  iterations: //p' "$TMP/shrunk.explain")
    [ "${s:-99}" -lt 6 ] || [ "${i:-99}" -lt 4 ] || fail "shrunk to sessions=$s iterations=$i: not smaller"
    "$PGFAULT" run "$shrunk" --out "$TMP/s2" >"$TMP/s2.log" 2>&1
    rc=$?
    [ "$rc" = 1 ] || fail "shrunk scenario: exit $rc, want 1 (still fails)"
    grep -qF "illegal_transition" "$TMP/s2.log" || fail "shrunk scenario does not fail the same check"
else
    fail "no shrunk scenario written"
fi

if [ "$fails" -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok"
