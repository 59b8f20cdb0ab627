#!/usr/bin/env bash
# outputs.sh - nothing lost (issue 11): a run's files are committed as one
# set (docs/report-format.md, "The output set").
#   - a full disk (PGFAULT_TEST_ENOSPC_AFTER) fails the run with exit 3 and
#     "No space left on device", the console names no report, and the
#     previous run's files are byte-for-byte intact;
#   - a real EFBIG (ulimit -f) in the fault log streamed during the run:
#     named exactly, nothing committed;
#   - SIGKILL while writing (PGFAULT_TEST_KILL_AFTER) leaves the previous set;
#   - SIGKILL between renames (PGFAULT_TEST_KILL_AT_RENAME) is detected by
#     `pgfault check` and completed by the next run;
#   - a suite's old scenario directories go when a single run replaces it,
#     the user's own files and OUT/replay stay;
#   - --out too long is exit 2 with nothing created;
#   - a 2 MB scenario description is written in bounded time (linear
#     escaping), and SIGTERM while the reports are written stops at once
#     with a consistent directory.
# Bounded: every run is small or under `timeout`.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-out.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$TMP/log" ] && sed 's/^/  log: /' "$TMP/log" | tail -20
    exit 1
}
. "$(dirname "$0")/proc_lib.bash"
PY=/usr/bin/python3
OUT=$TMP/out
RUN=(run --scenario incident --sessions 4 --iterations 3)
# A run either passes or fails its expectations (too few checks for the
# built-in's min_checks): both are complete runs.
ran() { "$PGFAULT" "$@" >"$TMP/log" 2>&1; [ $? -le 1 ]; }

# verify_set DIR: every file the manifest lists is there with its size and
# SHA-256; prints the run id.
verify_set() {
    "$PY" - "$1" <<'PYEOF'
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
assert m["format"] == "pgfault-output-set" and m["version"] == 1, m
for f in m["files"]:
    data = open(os.path.join(d, f["path"]), "rb").read()
    assert len(data) == f["bytes"], (f["path"], len(data), f["bytes"])
    assert hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
names = {f["path"] for f in m["files"]}
for want in ("history.jsonl", "faults.jsonl", "report.json", "junit.xml", "report.html"):
    assert any(n == want or n.endswith("/" + want) for n in names), want
print(m["run_id"])
PYEOF
}
snapshot() { (cd "$1" && find . -type f ! -path './.pgfault-new.*' -print0 | sort -z | xargs -0 sha256sum); }
no_leftovers() {
    ls -a "$1" | grep -q '^\.pgfault-new\.' && fail "staging directory left in $1"
    find "$1" -name '.*.tmp.*' | grep -q . && fail "temp files left in $1"
    return 0
}

# 1. a first run: the set and its manifest
ran "${RUN[@]}" --seed 1 --out "$OUT" || fail "first run failed"
id1=$(verify_set "$OUT") || fail "first run's set does not verify"
no_leftovers "$OUT"
snapshot "$OUT" >"$TMP/snap1"

# 2. a full disk while writing: exit 3, the exact errno, old set intact
PGFAULT_TEST_ENOSPC_AFTER=20000 "$PGFAULT" "${RUN[@]}" --seed 2 --out "$OUT" >"$TMP/log" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "full disk: exit $rc, want 3"
grep -q "No space left on device" "$TMP/log" || fail "full disk: ENOSPC not named"
grep -qi "input/output error" "$TMP/log" && fail "full disk reported as an I/O error"
grep -q "report.html" "$TMP/log" && fail "full disk: the console points at report.html"
grep -q "\.pgfault-new" "$TMP/log" && fail "full disk: a message names the staging directory"
snapshot "$OUT" | cmp -s - "$TMP/snap1" || fail "full disk changed the previous run's files"
no_leftovers "$OUT"

# 2b. a real write failure, no hook: RLIMIT_FSIZE (SIGXFSZ ignored, so
#     write(2) fails with EFBIG) stops the fault log as it streams during the
#     run (--no-check keeps the history small): named, nothing committed
(
    trap '' XFSZ
    ulimit -f 1 # KiB: the fault log of this run is about 2 KiB
    "$PGFAULT" "${RUN[@]}" --sessions 12 --iterations 6 --no-check --seed 9 --out "$OUT" \
        >"$TMP/log" 2>&1
)
rc=$?
[ "$rc" = 3 ] || fail "file size limit: exit $rc, want 3"
grep -q "faults.jsonl: write failed (File too large)" "$TMP/log" ||
    fail "file size limit: the fault log's failure is not named with its errno"
snapshot "$OUT" | cmp -s - "$TMP/snap1" || fail "a failed fault log changed the previous set"
no_leftovers "$OUT"

# (the shell reports the deliberate SIGKILLs below on stderr: expected)
# 3. SIGKILL in the middle of writing: the previous set stays
PGFAULT_TEST_KILL_AFTER=30000 "$PGFAULT" "${RUN[@]}" --seed 3 --out "$OUT" >"$TMP/log" 2>&1
rc=$?
[ "$rc" = 137 ] || fail "kill while writing: exit $rc, want 137 (SIGKILL)"
snapshot "$OUT" | cmp -s - "$TMP/snap1" || fail "SIGKILL while writing changed the previous set"
[ "$(verify_set "$OUT")" = "$id1" ] || fail "SIGKILL while writing: manifest changed"
"$PGFAULT" check "$OUT/history.jsonl" >/dev/null 2>"$TMP/err"
[ $? -le 1 ] || fail "check refuses the intact previous set: $(cat "$TMP/err")"

# 4. SIGKILL between the renames of a commit: readers refuse the torn set,
#    the next run completes it, then commits its own
PGFAULT_TEST_KILL_AT_RENAME=2 "$PGFAULT" "${RUN[@]}" --seed 4 --out "$OUT" >"$TMP/log" 2>&1
rc=$?
[ "$rc" = 137 ] || fail "kill at rename: exit $rc, want 137"
"$PGFAULT" check "$OUT/history.jsonl" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] || fail "check of a torn set: exit $rc, want 2"
grep -q "does not match" "$TMP/err" || fail "check does not say the file does not match: $(cat "$TMP/err")"
ran "${RUN[@]}" --seed 5 --out "$OUT" || fail "run after a torn commit failed"
id5=$(verify_set "$OUT") || fail "set after recovery does not verify"
[ "$id5" != "$id1" ] || fail "the new run did not commit"
no_leftovers "$OUT"
grep -q '"seed": "5"\|"seed": 5' "$OUT/report.json" || fail "report.json is not the seed-5 run's"
"$PGFAULT" check "$OUT/history.jsonl" >/dev/null 2>"$TMP/err"
[ $? -le 1 ] || fail "check after recovery: $(cat "$TMP/err")"

# 5. a suite replaced by a single run: old scenario dirs go, foreign files stay
S=$TMP/suite
"$PGFAULT" run --scenario incident --scenario truncated --sessions 3 --iterations 2 --out "$S" \
    >"$TMP/log" 2>&1
[ $? -le 1 ] || fail "suite run failed"
verify_set "$S" >/dev/null || fail "suite set does not verify"
[ -f "$S/truncated/history.jsonl" ] || fail "suite: no per-scenario history"
echo mine >"$S/notes.txt"
mkdir -p "$S/replay" && echo keep >"$S/replay/x"
ran "${RUN[@]}" --seed 6 --out "$S" || fail "single run over a suite failed"
verify_set "$S" >/dev/null || fail "single-run set does not verify"
[ -e "$S/truncated" ] && fail "the old suite's scenario directory is still there"
[ "$(cat "$S/notes.txt")" = mine ] || fail "a file that is not pgfault's was touched"
[ "$(cat "$S/replay/x")" = keep ] || fail "OUT/replay was touched"

# 6. --out too long: exit 2, nothing created
mkdir "$TMP/empty"
long=$(printf 'd%.0s' $(seq 1 300))
(cd "$TMP/empty" && "$PGFAULT" "${RUN[@]}" --out "x/$long" >"$TMP/log" 2>&1)
rc=$?
[ "$rc" = 2 ] || fail "--out with a 300-character component: exit $rc, want 2"
grep -q "at most" "$TMP/log" || fail "--out too long: no clear error"
[ -z "$(ls -A "$TMP/empty")" ] || fail "--out too long created $(ls -A "$TMP/empty")"
long=$(printf 'abcdefghi/%.0s' $(seq 1 110))
(cd "$TMP/empty" && "$PGFAULT" "${RUN[@]}" --out "$long" >"$TMP/log" 2>&1)
[ $? = 2 ] || fail "--out of 1100 characters: not exit 2"
[ -z "$(ls -A "$TMP/empty")" ] || fail "--out too long created a directory"

# 7. a 2 MB description: written in a few seconds (the old quadratic escaper
#    needed about 90 s, more than the timeout; the 8 MB unit test
#    outputs_escaping is the sharper check), then SIGTERM while writing
"$PY" - "$TMP/big.yaml" "$TMP/big2.yaml" <<'PYEOF'
import sys
for path, units in ((sys.argv[1], 300000), (sys.argv[2], 150000)):  # 2 MB; 1 MB to signal into
    desc = "x<&>'\u00e9 " * units
    open(path, "w").write("name: big\ndescription: '" + desc.replace("'", "''") +
                          "'\nseed: 1\nmode: sim\nworkload:\n  sessions: 2\n  iterations: 2\n")
PYEOF
B=$TMP/big
timeout 60 "$PGFAULT" run "$TMP/big.yaml" --out "$B" >"$TMP/log" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "big description: exit $rc (124 = did not finish in 60 s)"
verify_set "$B" >/dev/null || fail "big description: set does not verify"
grep -q '</html>' "$B/report.html" || fail "big description: report.html truncated"
snapshot "$B" >"$TMP/snapb"
"$PGFAULT" run "$TMP/big2.yaml" --out "$B" >"$TMP/log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q 'digest' "$TMP/log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
stop_pid TERM 200
# Either the signal came while writing (exit 3, previous set intact) or
# after the commit (exit 0, the new set): never a mix.
if [ "$rc" = 3 ]; then
    grep -q "interrupted" "$TMP/log" || fail "SIGTERM while writing: the message does not say so"
    snapshot "$B" | cmp -s - "$TMP/snapb" || fail "SIGTERM while writing changed the previous set"
    echo "note: SIGTERM arrived while the reports were written; the previous set stayed"
elif [ "$rc" != 0 ]; then
    fail "SIGTERM while writing: exit $rc"
fi
verify_set "$B" >/dev/null || fail "after SIGTERM the set does not verify"
no_leftovers "$B"
echo "ok"
