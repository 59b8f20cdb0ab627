#!/usr/bin/env bash
# example_python_sqlalchemy.sh - examples/python-sqlalchemy as a test: the
# incident's service (aiohttp + SQLAlchemy 2.0 AsyncSession on asyncpg, from
# scripts/python-env) driven by pgfault through its health URL.
#   incident-buggy.yaml  must FAIL, naming the 500 (http_5xx), the
#                        IllegalStateChangeError trace (exception_trace) and
#                        the leaked pooled connection (connection_leak), which
#                        the wire sees idle in transaction: the abandoned
#                        task's SELECT 1 began one (idle_in_transaction);
#   incident-fixed.yaml  must PASS (same faults; the session closed in the
#                        request with contextlib.aclosing);
#   url-fstring.yaml     must FAIL on health (every check auth_failed: the
#                        f-string URL decodes %2B), while incident-fixed.yaml
#                        connects with the same password through URL.create.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-exsqla.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=$("$PGF_SRC/scripts/python-env" "${PGF_BUILD:-$PGF_SRC/build}/pyenv") || {
    echo "FAIL: scripts/python-env could not make the Python environment"
    exit 1
}
"$PY" -c 'import sqlalchemy, asyncpg, aiohttp, sys; sys.exit(sqlalchemy.__version__ != "2.0.52")' || {
    echo "FAIL: $PY lacks SQLAlchemy 2.0.52, asyncpg or aiohttp"
    exit 1
}
. "$PGF_SRC/tests/e2e/target/sqla_compat.bash"
sqla_compat "$PY" "$TMP" || exit 1
# the scenarios say `python3`, as a user with the venv active would
export PATH="$(dirname "$PY"):$PATH"
EX="$PGF_SRC/examples/python-sqlalchemy"
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
failed_kinds() {
    "$PY" -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["kind"] for s in r["scenarios"] for c in s["checks"] if not c["passed"])))' "$1"
}
run() { # SCENARIO WANT_RC WANT_KINDS
    local out="$TMP/$1"
    timeout 150 "$PGFAULT" run "$EX/$1.yaml" --out "$out" >"$TMP/$1.log" 2>&1
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

run incident-buggy 1 "connection_leak exception_trace http_5xx idle_in_transaction"
grep -q "IllegalStateChangeError: Method 'close()' can't be called here; method '_connection_for_bind()' is already in progress" \
    "$TMP/incident-buggy/report.json" || fail "incident-buggy: the IllegalStateChangeError is not in the witness"
grep -q 'GET /healthz -&gt; 500' "$TMP/incident-buggy/junit.xml" || fail "incident-buggy: the 500 is not in junit.xml"
run incident-fixed 0 ""
grep -q '"reason":"ok"' "$TMP/incident-fixed/history.jsonl" || fail "incident-fixed: never healthy"
grep -q '"reason":"timeout"' "$TMP/incident-fixed/history.jsonl" || fail "incident-fixed: the stall was not felt"
run url-fstring 1 "expectation"
n=$(grep -c '"reason":"auth_failed"' "$TMP/url-fstring/history.jsonl")
[ "$n" -ge 20 ] || fail "url-fstring: $n auth_failed health records, want 20"

[ "$fails" = 0 ] && echo "example_python_sqlalchemy: all passed"
exit $((fails > 0))
