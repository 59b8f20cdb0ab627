#!/usr/bin/env bash
# example_java_hikari.sh - examples/java-hikari as a test: a health endpoint
# on HikariCP + pgjdbc (Debian's libhikaricp-java, libpostgresql-jdbc-java)
# under canceled statements, query resets and an auth stall.
#   health-try.yaml   closes the connection on every path: must PASS;
#   health-leak.yaml  never closes it when the query throws: must FAIL with
#                     no_recovery (the pool exhausted, every later request a
#                     503 "timeout") and nothing else.
# No java or a missing jar is a FAILURE (scripts/install-deps installs them).
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-exjava.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
EX="$PGF_SRC/examples/java-hikari"
command -v java >/dev/null || { echo "FAIL: java not found (scripts/install-deps installs openjdk-17-jdk-headless)"; exit 1; }
for jar in HikariCP postgresql slf4j-api slf4j-nop; do
    [ -f "/usr/share/java/$jar.jar" ] || {
        echo "FAIL: /usr/share/java/$jar.jar missing (scripts/install-deps installs libhikaricp-java)"
        exit 1
    }
done
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

run health-try 0 ""
for rule in canceled reset-query; do
    grep -q "\"rule\":\"$rule\"" "$TMP/health-try/history.jsonl" || fail "health-try: fault $rule never fired"
done
for reason in canceled connection_lost; do
    grep -q "\"reason\":\"$reason\"" "$TMP/health-try/history.jsonl" ||
        fail "health-try: no health check answered $reason: the faults were not felt"
done
run health-leak 1 "no_recovery"
grep -q 'never healthy again after the last fault' "$TMP/health-leak/junit.xml" ||
    fail "health-leak: junit.xml does not say the service never recovered"
grep -q 'reason&quot;:&quot;timeout' "$TMP/health-leak/junit.xml" ||
    fail "health-leak: junit.xml's witness does not show the pool's timeouts"

[ "$fails" = 0 ] && echo "example_java_hikari: all passed"
exit $((fails > 0))
