#!/usr/bin/env bash
# scenario_threads.sh - `server.threads` in a scenario:
#   - a stress scenario on a 2-loop embedded server (logins racing for
#     max_connections, cancel and close racers, resets and delays, a restart:
#     57P01 to six queries, then a refuse window asked for from any loop)
#     passes the checker: no violation, every session and server connection
#     closed;
#   - the run really used 2 loops (the server's info line), and --explain
#     spells the key out for replay;
#   - server.threads > 1 in sim mode (the default) is refused with
#     file:line:col and exit 2, as is `--mode sim` on a threaded scenario,
#     and so is the key with server.external.
# Bounded: the run lasts 1.5 s of load; only processes started here run.
set -euo pipefail
: "${PGFAULT:?}" "${PGF_SRC:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-thr.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cat >"$tmp/threads.yaml" <<'YAML'
name: threads-stress
description: the embedded server on 2 event loops under racing logins, cancels and closes
seed: 5
mode: stress
server:
  databases: [app]
  max_connections: 10
  threads: 2
faults:
  - {name: slow-rows, phase: data-row, action: delay, ms: 2, jitter_ms: 2, probability: 0.3}
  - {name: rst-mid-query, phase: data-row, action: reset, probability: 0.02}
  - {name: full, phase: startup, action: error, preset: too-many-clients, probability: 0.02}
  # a restart, as in the server-restart scenario, counted rather than timed (a loaded TSan
  # build may not query at all in a given 200 ms): 57P01 to queries 11-16 of the run, then
  # the 21st connection, on whichever loop, asks loop 0 to stop accepting for 150 ms. The
  # counters are global: shared by both loops.
  - {name: shutdown, phase: query, action: error, preset: admin-shutdown, scope: global, after: 10, times: 6}
  - {name: down, phase: accept, action: refuse, ms: 150, scope: global, after: 20, times: 1}
workload:
  sessions: 14
  threads: 2
  iterations: 0
  duration_ms: 1500
  query: "SELECT pg_sleep(0.002)"
  think_ms: 1
  connect_timeout_ms: 5000
  query_timeout_ms: 5000
racers:
  - {name: cancel-busy, op: cancel, at: BUSY, probability: 0.1}
  - {name: close-during-auth, op: close, at: CONNECTING_AUTH, probability: 0.03}
expect:
  violations: none
  all_closed: true
YAML

rc=0
timeout 120 "$PGFAULT" run "$tmp/threads.yaml" --out "$tmp/out" --log-level info \
    >"$tmp/run.out" 2>"$tmp/run.err" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc: $(tail -20 "$tmp/run.out") $(tail -5 "$tmp/run.err")"
grep -q '\[server\] 2 event loops' "$tmp/run.err" || fail "no 2-loop server line: $(head -5 "$tmp/run.err")"
python3 - "$tmp/out/report.json" <<'PY' || fail "report.json"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["scenarios"][0]
assert s["name"] == "threads-stress", s["name"]
names = [c["name"] for c in s["checks"]]
for want in ("checker: no connection_leak", "checker: no server_count_mismatch",
             "expect: every session closed, no server connection left"):
    assert want in names, want
bad = [c["name"] for c in s["checks"] if not c["passed"]]
assert not bad, bad
o = s["outcomes"]
# real work on every path (a TSan build under load manages ~15 healthy checks in 1.5 s):
# healthy checks, logins refused at max_connections, 57P01 during the restart
assert o["healthy"] >= 5 and o["too_many_connections"] >= 1 and o["shutting_down"] >= 1, o
# a stress run is never replayed exactly: no determinism digest (docs/history-format.md)
c = r["config"]["scenarios"][0]
assert "digest" in c and c["digest"] is None, c.get("digest")
PY
! grep -q "(digest" "$tmp/run.out" || fail "a stress run printed a digest: $(grep digest "$tmp/run.out")"
# ... which `pgfault check --digest` still computes on demand
"$PGFAULT" check "$tmp/out/history.jsonl" --digest >"$tmp/check.out" 2>&1 || fail "check: $(cat "$tmp/check.out")"
grep -Eq '^digest [0-9a-f]{64}$' "$tmp/check.out" || fail "check --digest: $(cat "$tmp/check.out")"

"$PGFAULT" run "$tmp/threads.yaml" --explain >"$tmp/explain.out" 2>&1 || fail "--explain: $(cat "$tmp/explain.out")"
grep -q '^  threads: 2$' "$tmp/explain.out" || fail "--explain lost server.threads: $(cat "$tmp/explain.out")"

# refused: sim mode (default), --mode sim, external
check_refused() { # FILE WANT-STDERR [ARGS...]
    local f=$1 want=$2
    shift 2
    local rc=0
    "$PGFAULT" run "$f" --out "$tmp/never" "$@" >"$tmp/r.out" 2>"$tmp/r.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$f $*: exit $rc, want 2"
    [ "$(cat "$tmp/r.err")" = "$want" ] || fail "$f $*: stderr '$(cat "$tmp/r.err")', want '$want'"
    [ ! -e "$tmp/never" ] || fail "$f: a run started"
}
printf 'name: t\nserver:\n  threads: 2\nworkload: {iterations: 1}\n' >"$tmp/sim.yaml"
check_refused "$tmp/sim.yaml" "pgfault run: $tmp/sim.yaml:3:12: 'server.threads: 2' needs 'mode: stress' (sim mode keeps one event loop: its virtual clock is that loop's)"
check_refused "$tmp/threads.yaml" "pgfault run: threads-stress: --mode sim keeps one event loop (server.threads: 2); use --mode stress" --mode sim
printf 'name: t\nmode: stress\nserver:\n  threads: 2\n  external: "host=127.0.0.1"\nworkload: {iterations: 1}\n' >"$tmp/ext.yaml"
check_refused "$tmp/ext.yaml" "pgfault run: $tmp/ext.yaml:4:12: 'server.threads' sets the event loops of the driver's embedded fake server: not supported with 'server.external'"
printf 'name: t\nmode: stress\nserver:\n  threads: 65\nworkload: {iterations: 1}\n' >"$tmp/big.yaml"
rc=0
"$PGFAULT" run "$tmp/big.yaml" --out "$tmp/never" >/dev/null 2>"$tmp/r.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "big.yaml:4:12: 'threads' out of range: 65 (expected 1..64)" "$tmp/r.err" ||
    fail "threads 65: exit $rc: $(cat "$tmp/r.err")"
echo ok
