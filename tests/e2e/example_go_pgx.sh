#!/usr/bin/env bash
# example_go_pgx.sh - examples/go-pgx as a test: a health endpoint on a pgx
# v4 pool (Debian's golang-go and golang-github-jackc-pgx-v4-dev, GOPATH
# mode: no module proxy) under queries that stall for good.
#   health-request.yaml  each query under the request's 1 s deadline: must
#                        PASS, the stalls answered 503 "timeout" in time;
#   health-none.yaml     context.Background(): must FAIL with exactly
#                        deadline and no_recovery (the stalled requests and
#                        then the exhausted pool hold every later request).
# No go or a missing pgx is a FAILURE (scripts/install-deps installs them).
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-exgo.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
EX="$PGF_SRC/examples/go-pgx"
command -v go >/dev/null || { echo "FAIL: go not found (scripts/install-deps installs golang-go)"; exit 1; }
[ -d /usr/share/gocode/src/github.com/jackc/pgx/v4 ] ||
    { echo "FAIL: pgx v4 missing (scripts/install-deps installs golang-github-jackc-pgx-v4-dev)"; exit 1; }
export GOCACHE="$TMP/gocache" # `go run` builds here, not in the user's cache
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
failed_kinds() {
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["kind"] for s in r["scenarios"] for c in s["checks"] if not c["passed"])))' "$1"
}
run() { # SCENARIO WANT_RC WANT_KINDS
    local out="$TMP/$1"
    timeout 200 "$PGFAULT" run "$EX/$1.yaml" --out "$out" >"$TMP/$1.log" 2>&1
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

run health-request 0 ""
[ "$(grep -c '"rule":"stall-query"' "$TMP/health-request/history.jsonl")" = 2 ] ||
    fail "health-request: the two stalls did not fire"
grep -q '"reason":"timeout"' "$TMP/health-request/history.jsonl" ||
    fail "health-request: no health check answered timeout: the stalls were not felt"
run health-none 1 "deadline no_recovery"
grep -q 'requests got no response in time' "$TMP/health-none/junit.xml" ||
    fail "health-none: junit.xml does not name the requests that got no response"

[ "$fails" = 0 ] && echo "example_go_pgx: all passed"
exit $((fails > 0))
