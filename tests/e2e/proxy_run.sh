#!/usr/bin/env bash
# proxy_run.sh - `pgfault run` against a real PostgreSQL 15 (scripts/pg-reference,
# temp dir, free port, SCRAM role):
#  - `server: {proxy: {upstream: ...}}`: the same scenario and faults give the
#    same outcome counts through the proxy as on the embedded fake, the
#    checker passes, and every fired fault is in the history, linked to its
#    session;
#  - the incident's scenario (close racing connects, SCRAM slowed) through
#    the proxy: the session manager passes, its broken variant is caught;
#  - a proxy whose upstream is down: exit 1, naming the upstream;
#  - `server.external` with a key=value conninfo and with a URL, each with a
#    password: the conninfo given is the one used (every check healthy), and
#    the password appears in no output file and on neither stream.
# Bounded: timeouts on every run; the reference server is stopped by the EXIT
# trap; loopback and a temp dir only.
set -euo pipefail
: "${PGFAULT:?PGFAULT must name the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must name the source tree}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
PY=/usr/bin/python3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-proxy-run.XXXXXX")
chmod 0711 "$TMP"
REF=
cleanup() {
    if [ -n "$REF" ]; then "$PGF_SRC/scripts/pg-reference" stop "$TMP/ref" >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
"$PGF_SRC/scripts/pg-reference" start "$TMP/ref" >"$TMP/ref.out" || fail "cannot start the reference PostgreSQL"
REF=1
PORT=$(awk '$1 == "port" {print $2}' "$TMP/ref.out")

# One scenario, two servers: the proxy in front of PostgreSQL, and the fake.
# Every second query (run-wide) gets FATAL 57P01; every login is delayed.
body='mode: stress
seed: 5
client: {user: pgf_scram, password: pgf_scram_pw, database: postgres}
workload: {sessions: 4, iterations: 5, threads: 2}
faults:
  - {name: fatal, phase: query, action: error, preset: admin-shutdown, every: 2, scope: global}
  - {name: slow, phase: auth-request, action: delay, ms: 20}'
printf 'name: via-proxy\nserver:\n  proxy: {upstream: "127.0.0.1:%s"}\n%s\n' "$PORT" "$body" >"$TMP/proxy.yaml"
printf 'name: via-fake\nserver:\n  users: [{name: pgf_scram, password: pgf_scram_pw, method: scram-sha-256}]\n%s\n' "$body" >"$TMP/fake.yaml"
for s in proxy fake; do
    rc=0
    timeout 120 "$PGFAULT" run "$TMP/$s.yaml" --out "$TMP/$s" --quiet >"$TMP/$s.log" 2>&1 || rc=$?
    [ "$rc" = 0 ] || fail "pgfault run via $s: exit $rc: $(cat "$TMP/$s.log")"
done
$PY - "$TMP/proxy" "$TMP/fake" <<'EOF' || fail "outcomes differ between the proxy and the fake"
import json, sys
def load(d):
    s = json.load(open(d + "/report.json"))["scenarios"][0]
    faults = [json.loads(l) for l in open(d + "/history.jsonl") if '"type":"fault"' in l]
    return {k: v for k, v in s["outcomes"].items() if v}, faults
(po, pf), (fo, ff) = load(sys.argv[1]), load(sys.argv[2])
assert po == fo == {"healthy": 10, "shutting_down": 10}, (po, fo)
count = lambda fs, rule: sum(1 for f in fs if f["rule"] == rule)
assert count(pf, "fatal") == count(ff, "fatal") == 10, (count(pf, "fatal"), count(ff, "fatal"))
assert count(pf, "slow") == count(ff, "slow") == 20
assert all(f["session"] >= 1 for f in pf), "a proxy fault is not linked to its session"
print("outcomes", po, "faults", len(pf))
EOF
echo "pgfault run: the proxy in front of PostgreSQL and the fake agree"

# The incident (close racing connects while SCRAM is slowed) against the real
# server: the session manager passes, its broken variant is caught.
cat >"$TMP/incident.yaml" <<EOF
name: incident-proxy
mode: stress
seed: 42
server: {proxy: {upstream: "127.0.0.1:$PORT"}}
client: {user: pgf_scram, password: pgf_scram_pw, database: postgres}
faults:
  - {name: slow-sasl, phase: sasl-continue, action: delay, ms: 30, probability: 0.5}
workload: {sessions: 8, iterations: 10, think_ms: 5, connect_timeout_ms: 2000, threads: 2}
racers:
  - {name: close-during-auth, op: close, at: CONNECTING_AUTH, probability: 0.3}
  - {name: close-during-startup, op: close, at: CONNECTING_STARTUP, probability: 0.1}
  - {name: close-during-check, op: close, at: BUSY, probability: 0.2}
  - {name: check-after-close, op: check, at: CLOSED, probability: 0.2}
expect: {violations: none, all_closed: true, min_checks: 40}
EOF
rc=0
timeout 120 "$PGFAULT" run "$TMP/incident.yaml" --out "$TMP/inc" --quiet >"$TMP/inc.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "the incident through the proxy: exit $rc: $(tail -n 20 "$TMP/inc.log")"
rc=0
timeout 120 "$PGFAULT" run "$TMP/incident.yaml" --out "$TMP/inc-bug" --quiet --bugs close-frees-during-connect \
    >"$TMP/inc-bug.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "the broken session manager through the proxy: exit $rc, want 1: $(tail -n 20 "$TMP/inc-bug.log")"
$PY -c 'import json,sys; s=json.load(open(sys.argv[1]))["scenarios"][0]; assert s["violations_total"] > 0, s["violations"]' \
    "$TMP/inc-bug/report.json" || fail "no violations recorded for the broken variant"
echo "the incident against PostgreSQL through the proxy: passes, and the broken variant is caught"

# The proxy's upstream is down: nothing was tested -> exit 1, naming it.
closed=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'name: proxy-down\nmode: stress\nserver:\n  proxy: {upstream: "127.0.0.1:%s", connect_timeout_ms: 2000}\nclient: {user: u, password: pw}\nworkload: {sessions: 2, iterations: 2}\n' \
    "$closed" >"$TMP/down.yaml"
rc=0
timeout 60 "$PGFAULT" run "$TMP/down.yaml" --out "$TMP/down" --quiet 2>"$TMP/down.err" || rc=$?
[ "$rc" = 1 ] || fail "proxy with a dead upstream: exit $rc, want 1: $(cat "$TMP/down.err")"
grep -q "the proxy could not reach its upstream (127.0.0.1:$closed) for any of 4 sessions" "$TMP/down.err" ||
    fail "proxy with a dead upstream: no error naming it: $(cat "$TMP/down.err")"
echo "a dead upstream behind the proxy fails the run, naming it"

# server.external: the conninfo given is used; its password is never shown.
ext_check() {
    local name=$1 conninfo=$2 rc=0
    printf 'name: %s\nmode: stress\nserver: {external: "%s"}\nworkload: {sessions: 2, iterations: 3}\n' \
        "$name" "$conninfo" >"$TMP/$name.yaml"
    timeout 60 "$PGFAULT" run "$TMP/$name.yaml" --out "$TMP/$name" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    [ "$rc" = 0 ] || fail "external $name: exit $rc: $(cat "$TMP/$name.err")"
    $PY -c 'import json,sys; s=json.load(open(sys.argv[1]))["scenarios"][0]; assert s["outcomes"]["healthy"] == 6, s["outcomes"]' \
        "$TMP/$name/report.json" || fail "external $name: the checks did not reach the server"
    ! grep -r -q pgf_scram_pw "$TMP/$name" "$TMP/$name.out" "$TMP/$name.err" ||
        fail "external $name: the password appears in the output"
}
ext_check kv "host=127.0.0.1 port=$PORT user=pgf_scram password=pgf_scram_pw dbname=postgres sslmode=disable"
ext_check url "postgresql://pgf_scram:pgf_scram_pw@127.0.0.1:$PORT/postgres?sslmode=disable"
grep -q 'password=\*\*\*\*' "$TMP/kv/report.json" || fail "external kv: the masked conninfo is not in the report"
echo "server.external: key=value and URL conninfos used as given, passwords masked"
echo PASS
