#!/usr/bin/env bash
# target_http.sh - `target:` scenarios (docs/targets.md): pgfault starts a
# service, hands it the fake server's coordinates, drives GET /healthz under
# fault rules and judges it from outside. tests/e2e/target/service.py has one
# misbehaviour per MODE, and each must fail exactly the check that names it
# (the correct MODE=ok passes all of them):
#   ok -> exit 0; trace -> exception_trace + http_5xx; leak -> connection_leak;
#   die -> service_died; status -> http_status; stubborn (ignores SIGTERM)
#   passes and is SIGKILLed after the grace period.
# Also: the service's output lands in the output directory, its environment
# carries the server's coordinates, `pgfault replay` of the report runs it
# again, sim mode is refused (exit 2), and a bad `target:` key is named
# file:line:col (exit 2). The service starts with no signal blocked and
# SIGPIPE not ignored; a program that is not there is an error naming it.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-target.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
"$PY" -c 'import asyncpg, aiohttp' 2>/dev/null || {
    echo "FAIL: asyncpg or aiohttp missing for $PY (scripts/install-deps installs python3-asyncpg python3-aiohttp)"
    exit 1
}
# the scenario says `python3`: make it Debian's, whatever is first in PATH
mkdir -p "$TMP/bin" && ln -s "$PY" "$TMP/bin/python3"
export PATH="$TMP/bin:$PATH"
SCN="$PGF_SRC/tests/e2e/target/health.yaml"
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

failed_kinds() { # report.json -> the kinds of the failed checks, sorted, one line
    "$PY" -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["kind"] for s in r["scenarios"] for c in s["checks"] if not c["passed"])))' "$1"
}

run_mode() { # MODE WANT_RC WANT_KINDS
    local mode=$1 want_rc=$2 want=$3 out="$TMP/out-$1"
    TARGET_MODE=$mode timeout 120 "$PGFAULT" run "$SCN" --out "$out" >"$TMP/$mode.log" 2>&1
    local rc=$?
    if [ "$rc" != "$want_rc" ]; then
        fail "MODE=$mode: exit $rc, want $want_rc"
        tail -30 "$TMP/$mode.log"
        return
    fi
    local got
    got=$(failed_kinds "$out/report.json")
    [ "$got" = "$want" ] || fail "MODE=$mode: failed checks '$got', want '$want'"
    [ -s "$out/service.stdout" ] || fail "MODE=$mode: service.stdout missing or empty"
    [ -f "$out/service.stderr" ] || fail "MODE=$mode: service.stderr missing"
}

run_mode ok 0 ""
# the service saw the server's coordinates (it prints where its database is)
grep -q "mode ok on port [0-9]*; database 127.0.0.1:[0-9]*/postgres" "$TMP/out-ok/service.stdout" ||
    fail "service.stdout does not show PORT and DATABASE_URL: $(cat "$TMP/out-ok/service.stdout")"
n=$(grep -c '"type":"health"' "$TMP/out-ok/history.jsonl")
[ "$n" -ge 24 ] || fail "MODE=ok: $n health records, want >= 24 (3 sessions x 8)"
grep -q '"type":"fault".*"rule":"reset-auth"' "$TMP/out-ok/history.jsonl" ||
    fail "MODE=ok: no fault record in the history"
grep -q 'testcase name="no server connection left open beyond the idle floor' "$TMP/out-ok/junit.xml" ||
    fail "MODE=ok: junit.xml lacks the connection-leak testcase"

# replay from the report (the scenario as --explain writes it, target.dir absolute)
(cd "$TMP" && TARGET_MODE=ok timeout 120 "$PGFAULT" replay "$TMP/out-ok/report.json" --out "$TMP/replay") \
    >"$TMP/replay.log" 2>&1 || fail "replay of MODE=ok: exit $?: $(tail -5 "$TMP/replay.log")"
[ -s "$TMP/replay/service.stdout" ] || fail "replay: the service did not run"

run_mode trace 1 "exception_trace http_5xx"
grep -q 'ConnectionResetError' "$TMP/out-trace/report.json" ||
    fail "MODE=trace: the exception line is not in the witness"
run_mode leak 1 "connection_leak"
run_mode die 1 "deadline service_died"
grep -q 'exited with status 3' "$TMP/out-die/report.json" || fail "MODE=die: exit status not reported"
run_mode status 1 "http_status"
run_mode stubborn 0 ""
grep -q "SIGKILL after the grace period" "$TMP/stubborn.log" || fail "MODE=stubborn: not SIGKILLed: $(tail -5 "$TMP/stubborn.log")"

# sim mode cannot drive a process: exit 2, nothing run
TARGET_MODE=ok "$PGFAULT" run "$SCN" --mode sim --out "$TMP/sim" >"$TMP/sim.log" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "--mode sim: exit $rc, want 2"
grep -q "cannot drive a service (target:): it runs in real time; use --mode stress" "$TMP/sim.log" ||
    fail "--mode sim: message is '$(cat "$TMP/sim.log")'"
printf 'name: x\nmode: sim\ntarget:\n  http: {url: "http://127.0.0.1:1/"}\nworkload: {iterations: 1}\n' >"$TMP/sim.yaml"
"$PGFAULT" run "$TMP/sim.yaml" --out "$TMP/sim2" >"$TMP/sim2.log" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "mode: sim in the file: exit $rc, want 2"
grep -q "sim.yaml:2:7: 'target' needs 'mode: stress'" "$TMP/sim2.log" ||
    fail "mode: sim in the file: message is '$(cat "$TMP/sim2.log")'"
printf 'name: x\ntarget:\n  http: {url: "http://127.0.0.1:1/", timeout: 5}\n' >"$TMP/bad.yaml"
"$PGFAULT" run "$TMP/bad.yaml" --out "$TMP/bad" >"$TMP/bad.log" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "bad key: exit $rc, want 2"
grep -q "bad.yaml:3:38: unknown key 'timeout' in 'target.http'" "$TMP/bad.log" ||
    fail "bad key: message is '$(cat "$TMP/bad.log")'"
[ ! -e "$TMP/bad" ] || fail "bad key: a run started"

# the service starts as a shell would start it: no signal blocked, SIGPIPE
# not ignored (pgfault ignores it; a forked child used to inherit that)
printf 'name: sig\ntarget:\n  service: {command: [cat, /proc/self/status], ready_timeout_ms: 2000}\n  http: {url: "http://127.0.0.1:${PORT}/"}\nworkload: {sessions: 1, iterations: 1}\n' >"$TMP/sig.yaml"
timeout 60 "$PGFAULT" run "$TMP/sig.yaml" --out "$TMP/sig" >"$TMP/sig.log" 2>&1
grep -qx 'SigBlk:[[:space:]]*0*' "$TMP/sig/service.stdout" ||
    fail "service signal mask: $(grep ^Sig "$TMP/sig/service.stdout" 2>&1)"
ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "$TMP/sig/service.stdout")
[ -n "$ign" ] && [ $((0x$ign & (1 << 12))) = 0 ] || fail "service ignores SIGPIPE (SigIgn $ign)"
# a program that is not there: the start fails, naming it and the directory
printf 'name: nope\ntarget:\n  service: {command: [pgf-no-such-program]}\n  http: {url: "http://127.0.0.1:${PORT}/"}\n' >"$TMP/nope.yaml"
timeout 60 "$PGFAULT" run "$TMP/nope.yaml" --out "$TMP/nope" >"$TMP/nope.log" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "missing program: exit $rc, want 3"
grep -q "cannot start 'pgf-no-such-program' in $TMP: No such file or directory" "$TMP/nope.log" ||
    fail "missing program: message is '$(head -3 "$TMP/nope.log")'"

[ "$fails" = 0 ] && echo "target_http: all passed"
exit $((fails > 0))
