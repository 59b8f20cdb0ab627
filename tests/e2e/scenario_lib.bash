#!/usr/bin/env bash
# scenario_lib.bash - the per-scenario ctests registered by
# tests/scenarios.cmake (not a ctest itself: the e2e glob takes *.sh only).
#
#   scenario_lib.bash builtin NAME [RUN ARGS...]
#       `pgfault run --scenario NAME` must exit 0 (all checks and
#       expectations pass). A sim-mode scenario is then run again with the
#       same seed (the history must be byte-identical: the determinism
#       self-check) and with another seed (the history must differ).
#   scenario_lib.bash bug SCENARIO BUG KIND [RUN ARGS...]
#       the built-in SCENARIO with --bugs BUG must exit 1 with violation
#       KIND named in report.json (the correct manager passing the same
#       scenario is the `builtin` test).
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-scenario.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3

die() {
    echo "FAIL: $*"
    for f in "$TMP"/*.log; do
        [ -f "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -25
    done
    exit 1
}

run() { # run OUTDIR LOG ARGS... ; echoes the exit code
    local out=$1 log=$2
    shift 2
    "$PGFAULT" run "$@" --out "$out" >"$log" 2>&1
    echo $?
}

mode_of() { # mode of a built-in, from --explain
    "$PGFAULT" run --scenario "$1" --explain | sed -n 's/^mode: //p' | head -1
}

case "${1:-}" in
builtin)
    name=$2
    shift 2
    rc=$(run "$TMP/a" "$TMP/a.log" --scenario "$name" "$@")
    [ "$rc" = 0 ] || die "$name: exit $rc, want 0"
    for f in history.jsonl report.json junit.xml report.html; do
        [ -s "$TMP/a/$f" ] || die "$name: $f missing or empty"
    done
    for f in faults.jsonl; do
        [ -f "$TMP/a/$f" ] || die "$name: $f missing"
    done
    "$PY" - "$TMP/a/report.json" "$name" <<'PYEOF' || die "$name: report.json"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["scenarios"][0]
assert s["name"] == sys.argv[2], s["name"]
assert s["passed"] is True, "scenario not passed"
assert s["violations_total"] == 0, s["violations_total"]
assert s["health_checks"] > 0, "no health checks ran"
assert all(c["passed"] for c in s["checks"]), [c for c in s["checks"] if not c["passed"]]
PYEOF
    if [ "$(mode_of "$name")" = sim ]; then
        seed=$("$PGFAULT" run --scenario "$name" --explain | sed -n 's/^seed: //p' | head -1)
        rc=$(run "$TMP/b" "$TMP/b.log" --scenario "$name" "$@")
        [ "$rc" = 0 ] || die "$name: second run exit $rc"
        cmp -s "$TMP/a/history.jsonl" "$TMP/b/history.jsonl" ||
            die "$name: same seed $seed, different histories (sim mode must be deterministic)"
        cmp -s "$TMP/a/faults.jsonl" "$TMP/b/faults.jsonl" ||
            die "$name: same seed $seed, different fault logs"
        d1=$(grep -o 'digest [0-9a-f]*' "$TMP/a.log")
        d2=$(grep -o 'digest [0-9a-f]*' "$TMP/b.log")
        [ -n "$d1" ] && [ "$d1" = "$d2" ] || die "$name: console digests differ: '$d1' vs '$d2'"
        run "$TMP/c" "$TMP/c.log" --scenario "$name" --seed $((seed + 1000)) "$@" >/dev/null
        [ -s "$TMP/c/history.jsonl" ] || die "$name: no history with another seed"
        d3=$(grep -o 'digest [0-9a-f]*' "$TMP/c.log")
        ! cmp -s "$TMP/a/history.jsonl" "$TMP/c/history.jsonl" && [ "$d1" != "$d3" ] ||
            die "$name: seed $seed and seed $((seed + 1000)) gave the same history"
    fi
    echo "ok: $name"
    ;;
bug)
    scen=$2 bug=$3 kind=$4
    shift 4
    rc=$(run "$TMP/a" "$TMP/a.log" --scenario "$scen" --bugs "$bug" --mode sim "$@")
    [ "$rc" = 1 ] || die "$scen --bugs $bug: exit $rc, want 1 (violations)"
    grep -qF "x $kind:" "$TMP/a.log" || die "$scen --bugs $bug: console does not name $kind"
    "$PY" - "$TMP/a/report.json" "$kind" "${PGF_BUG_ONLY:-}" <<'PYEOF' || die "$scen --bugs $bug: report.json lacks $kind (or, with PGF_BUG_ONLY, has more)"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["scenarios"][0]
kinds = [c.get("kind") for c in s["checks"] if not c["passed"]]
assert sys.argv[2] in kinds, kinds
if sys.argv[3]:  # PGF_BUG_ONLY: the bug and nothing the harness made of it
    assert kinds == [sys.argv[2]], kinds
assert s["violations_total"] > 0
assert s["replay_command"], "no replay command"
PYEOF
    echo "ok: $scen --bugs $bug caught as $kind"
    ;;
*)
    echo "usage: scenario_lib.bash builtin NAME | bug SCENARIO BUG KIND" >&2
    exit 2
    ;;
esac
