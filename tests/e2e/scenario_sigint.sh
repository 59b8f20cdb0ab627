#!/usr/bin/env bash
# scenario_sigint.sh - SIGINT during a stress run (the one-hour soak) still
# writes complete report.json, junit.xml and report.html, marked
# interrupted, and exits 1 (partial results are not a pass). Bounded: the
# signal goes after the first progress line (or 10 s), the run must end
# within 20 s of it.
# Then a run that cannot stop - its console is a pipe nobody reads, so it
# blocks in write() - still ends PGFAULT_STOP_GRACE_S after SIGTERM, exit
# 3, saying why on stderr (before: it hung until SIGKILL).
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-int.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    exec 3>&-
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    sed 's/^/  log: /' "$TMP/log" | tail -20
    exit 1
}
. "$(dirname "$0")/proc_lib.bash"

"$PGFAULT" run --scenario soak --out "$TMP/out" >"$TMP/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q '^\[soak\]' "$TMP/log" && break
    sleep 0.1
done
grep -q '^\[soak\]' "$TMP/log" || fail "no progress line within 10 s"
stop_pid INT 200
[ "$rc" = 1 ] || fail "exit $rc after SIGINT, want 1"
for f in report.json junit.xml report.html history.jsonl; do
    [ -s "$TMP/out/$f" ] || fail "$f missing or empty"
done
ls "$TMP/out" | grep -q '\.tmp' && fail "temporary report files left behind"
/usr/bin/python3 - "$TMP/out/report.json" <<'PYEOF' || fail "report.json not marked interrupted"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["run"]["interrupted"] is True, r["run"]
assert r["scenarios"][0]["health_checks"] > 0
PYEOF
xmllint --noout "$TMP/out/junit.xml" || fail "junit.xml is not well-formed"
grep -qi "interrupted" "$TMP/out/junit.xml" || fail "junit.xml does not say interrupted"
grep -qi "interrupted" "$TMP/out/report.html" || fail "report.html does not say interrupted"
grep -q '</html>' "$TMP/out/report.html" || fail "report.html truncated"

# 2. stuck: the console pipe is full before the run starts and never read
mkfifo "$TMP/console"
exec 3<>"$TMP/console" # a reader, so opening it does not block; it never reads
/usr/bin/python3 - <<'PYEOF' || fail "cannot fill the console pipe"
import fcntl, os
fcntl.fcntl(3, fcntl.F_SETFL, fcntl.fcntl(3, fcntl.F_GETFL) | os.O_NONBLOCK)
try:
    while True:
        os.write(3, b"x" * 4096)
except BlockingIOError:
    pass
PYEOF
PGFAULT_STOP_GRACE_S=2 "$PGFAULT" run --scenario soak --out "$TMP/stuck" >"$TMP/console" 2>"$TMP/log" &
pid=$!
for _ in $(seq 1 100); do # until it has begun its output set (or 10 s)
    [ -n "$(ls -A "$TMP/stuck" 2>/dev/null)" ] && break
    sleep 0.1
done
stop_pid TERM 150 # the grace is 2 s
[ "$rc" = 3 ] || fail "blocked run: exit $rc after SIGTERM, want 3"
grep -q "did not stop in time after SIGINT/SIGTERM (2 s after the first signal" "$TMP/log" ||
    fail "blocked run: stderr does not say why it gave up"
PGFAULT_STOP_GRACE_S=soon "$PGFAULT" run --scenario incident --out "$TMP/x" >"$TMP/log" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "PGFAULT_STOP_GRACE_S=soon: exit $rc, want 2"
grep -q "PGFAULT_STOP_GRACE_S=soon: want whole seconds" "$TMP/log" || fail "bad grace not named"
echo "ok"
