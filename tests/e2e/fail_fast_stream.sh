#!/usr/bin/env bash
# fail_fast_stream.sh - live verdicts (docs/soak.md): the streaming checker
# sees the first violation while the run goes on, and `run --fail-fast`
# stops that run there -- a planted bug (--bugs) in a run planned for
# 100,000 iterations per session (sim) or 10 minutes (stress) ends after a
# few dozen checks, still writing a complete report.json (stopped_early
# says why, load_ms/verdict_ms present), junit.xml, report.html and a
# history that `pgfault check` finds the same violation in. Bounded by
# `timeout`, no sleeps.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-ffs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=$(command -v python3) || {
    echo "FAIL: python3 missing"
    exit 1
}
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# report.json -> "health_checks stopped_early_nonnull load_ms_present verdict_ms"
facts() {
    "$PY" -c 'import json,sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
print(s["health_checks"], "yes" if s.get("stopped_early") else "no",
      "yes" if "load_ms" in s else "no", s.get("verdict_ms", -1))
if s.get("stopped_early"): print(s["stopped_early"], file=sys.stderr)' "$1"
}

check_run() { # NAME ARGS...
    local name=$1
    shift
    timeout 60 "$PGFAULT" run --quiet --scenario incident --bugs close-frees-during-connect \
        --fail-fast "$@" --out "$TMP/$name" 2>"$TMP/$name.err"
    local rc=$?
    [ "$rc" = 1 ] || {
        fail "$name: exit $rc, want 1 (violations)"
        cat "$TMP/$name.err"
        return
    }
    for f in report.json junit.xml report.html history.jsonl; do
        [ -s "$TMP/$name/$f" ] || fail "$name: $f missing or empty"
    done
    facts "$TMP/$name/report.json" >"$TMP/$name.facts" 2>"$TMP/$name.why"
    read -r checks stopped loadms verdictms <"$TMP/$name.facts"
    [ "$stopped" = yes ] || fail "$name: report.json does not say it stopped early"
    grep -q 'first violation (illegal_transition)' "$TMP/$name.why" ||
        fail "$name: stopped_early does not name the violation: $(cat "$TMP/$name.why")"
    [ "$loadms" = yes ] || fail "$name: no load_ms"
    "$PY" -c 'import sys; sys.exit(not (0 <= float(sys.argv[1]) < 10000))' "$verdictms" ||
        fail "$name: verdict_ms $verdictms"
    # a full run would be 100,000 iterations x the sessions (or 10 minutes)
    [ "$checks" -gt 0 ] && [ "$checks" -lt 1000 ] ||
        fail "$name: $checks health checks: the run did not stop early"
    timeout 60 "$PGFAULT" check "$TMP/$name/history.jsonl" >"$TMP/$name.check" 2>&1
    [ $? = 1 ] || fail "$name: pgfault check on the history did not find the violation"
    grep -q illegal_transition "$TMP/$name.check" || fail "$name: check names no illegal_transition"
}

check_run sim --iterations 100000
check_run stress --mode stress --duration 600000

# without the bug the same run goes on (the flag alone stops nothing)
timeout 60 "$PGFAULT" run --quiet --scenario incident --fail-fast --out "$TMP/clean" ||
    fail "clean run with --fail-fast exited $?"
facts "$TMP/clean/report.json" >"$TMP/clean.facts" 2>/dev/null
read -r checks stopped _ _ <"$TMP/clean.facts"
[ "$stopped" = no ] || fail "clean run: says it stopped early"
[ "$checks" -ge 100 ] || fail "clean run: only $checks health checks"

[ "$fails" = 0 ] && echo "fail_fast_stream: all passed"
exit $((fails > 0))
