#!/usr/bin/env bash
# example_node_pg.sh - examples/node-pg as a test: a health endpoint on
# pg.Pool (npm, committed lock file) under query resets and an auth stall.
#   health-once.yaml    releases each client exactly once: must PASS;
#   health-double.yaml  releases twice on the failure path: must FAIL with
#                       exception_trace naming pg-pool's "Release called on
#                       client which has already been released to the pool."
# node_modules comes from `npm ci` (scripts/install-deps does it; so does this
# test when it is missing); no node or npm is a FAILURE.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-exnode.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
EX="$PGF_SRC/examples/node-pg"
command -v node >/dev/null || { echo "FAIL: node not found (scripts/install-deps installs nodejs)"; exit 1; }
if [ ! -d "$EX/node_modules/pg" ]; then
    (cd "$EX" && timeout 180 npm ci --no-audit --no-fund --silent) || {
        echo "FAIL: npm ci in $EX failed"
        exit 1
    }
fi
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
failed_kinds() {
    node -e 'const r = require(process.argv[1]);
console.log(r.scenarios.flatMap(s => s.checks).filter(c => !c.passed).map(c => c.kind).sort().join(" "))' "$1"
}
run() { # SCENARIO WANT_RC WANT_KINDS
    local out="$TMP/$1"
    timeout 120 "$PGFAULT" run "$EX/$1.yaml" --out "$out" >"$TMP/$1.log" 2>&1
    local rc=$?
    if [ "$rc" != "$2" ]; then
        fail "$1: exit $rc, want $2"
        tail -40 "$TMP/$1.log"
        [ -f "$out/service.stderr" ] && tail -20 "$out/service.stderr"
        return
    fi
    local got
    got=$(failed_kinds "$out/report.json")
    [ "$got" = "$3" ] || fail "$1: failed checks '$got', want '$3'"
}

run health-once 0 ""
grep -q '"rule":"reset-query"' "$TMP/health-once/history.jsonl" || fail "health-once: no reset fired"
grep -q '"reason":"connection_lost"' "$TMP/health-once/history.jsonl" || fail "health-once: the resets were not felt"
run health-double 1 "exception_trace"
grep -q "Release called on client which has already been released to the pool" "$TMP/health-double/junit.xml" ||
    fail "health-double: pg-pool's error is not in junit.xml"

[ "$fails" = 0 ] && echo "example_node_pg: all passed"
exit $((fails > 0))
