#!/usr/bin/env bash
# example_proxy_real.sh - the service examples against a REAL PostgreSQL 15
# through pgfault's fault proxy (`server: {proxy: ...}` in a `target:`
# scenario, docs/targets.md "Through the proxy"), under the incident's faults.
#
# One throwaway PostgreSQL 15 (scripts/pg-reference: temp dir, free loopback
# port) gets a SCRAM role `app` whose password contains "%2B", and a database
# `appdb`. Every scenario names the server as ${PG_UPSTREAM} and the password
# as ${APP_DB_PASSWORD}. Three tracks run side by side (each service on its
# own proxy and port):
#   examples/python-sqlalchemy (aiohttp + SQLAlchemy 2.0 AsyncSession, asyncpg)
#     no faults, buggy style     PASS: the bug needs the fault to show;
#     proxy-buggy.yaml           FAIL with exactly the 500 (http_5xx), the
#                                IllegalStateChangeError trace, the leaked
#                                connection and idle-in-transaction -- judged
#                                by the proxy's wire observer, in front of the
#                                real backend;
#     proxy-fixed.yaml           under the same SCRAM stall (it is felt): no 500,
#                                no IllegalStateChangeError, nothing left open:
#                                PASS;
#     proxy-fstring.yaml         every health check auth_failed: PostgreSQL's
#                                own 28P01, passed through (exit 1: the
#                                expectation of a healthy service);
#   examples/python-adapter (an adapter target: AsyncSession over JSON lines)
#     proxy-incident.yaml        PASS: closes raced against stalled connects are
#                                refused (IllegalStateChangeError), no violation;
#   examples/node-pg (pg.Pool)
#     no faults, double release  PASS;
#     proxy-once.yaml            PASS under query resets and an auth stall;
#     proxy-double.yaml          FAIL: pg-pool's double-release trace;
#     proxy-wrong-password.yaml  PASS: every check auth_failed, no login storm;
#     the same with no think time FAILS login_storm (over 20 logins/s);
#     proxy-once.yaml, database down: the proxy's 57P03 is "unreachable" to
#                                the service, and the run fails naming it;
#   examples/java-hikari (HikariCP + pgjdbc) and examples/go-pgx (pgxpool)
#     proxy-try.yaml             PASS under canceled statements (the proxy's
#                                57014), resets and an auth stall;
#     proxy-leak.yaml            FAIL: no_recovery, the pool leaked dry;
#     proxy-request.yaml         PASS: stalled queries answered 503 in time;
#     proxy-none.yaml            FAIL: deadline and no_recovery.
# Faults are linked: fault records in history.jsonl and faults.jsonl name the
# proxy's connection, the client port and the role. The password appears in
# no output (reports, histories, fault logs, service logs, console). Bad
# combinations are exit 2 naming file:line:col.
#
# Bounded: a timeout(1) on every run; services are started and stopped by
# pgfault by PID; the reference server is stopped by the EXIT trap. A missing
# node, npm package, Python stack, JDK, Go or PostgreSQL FAILS.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-exproxy.XXXXXX")
chmod 0711 "$TMP" # the reference server runs as the postgres user when we are root
REF=
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$REF" ]; then "$PGF_SRC/scripts/pg-reference" stop "$TMP/ref" >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
die() {
    echo "FAIL: $*"
    exit 1
}

# --- the stacks ---------------------------------------------------------
command -v psql >/dev/null || die "psql not found (scripts/install-deps installs postgresql-client-15)"
command -v node >/dev/null || die "node not found (scripts/install-deps installs nodejs)"
PY=$("$PGF_SRC/scripts/python-env" "${PGF_BUILD:-$PGF_SRC/build}/pyenv") ||
    die "scripts/python-env could not make the Python environment"
"$PY" -c 'import sqlalchemy, asyncpg, aiohttp, sys; sys.exit(sqlalchemy.__version__ != "2.0.52")' ||
    die "$PY lacks SQLAlchemy 2.0.52, asyncpg or aiohttp"
PYEX="$PGF_SRC/examples/python-sqlalchemy"
NODEEX="$PGF_SRC/examples/node-pg"
JAVAEX="$PGF_SRC/examples/java-hikari"
GOEX="$PGF_SRC/examples/go-pgx"
command -v java >/dev/null || die "java not found (scripts/install-deps installs openjdk-17-jdk-headless)"
[ -f /usr/share/java/HikariCP.jar ] || die "HikariCP missing (scripts/install-deps installs libhikaricp-java)"
command -v go >/dev/null || die "go not found (scripts/install-deps installs golang-go)"
export GOCACHE="$TMP/gocache" # `go run` builds here
ADEX="$PGF_SRC/examples/python-adapter"
if [ ! -d "$NODEEX/node_modules/pg" ]; then
    (cd "$NODEEX" && timeout 180 npm ci --no-audit --no-fund --silent) || die "npm ci in $NODEEX failed"
fi
# the scenarios say `python3`, as a user with the venv active would
export PATH="$(dirname "$PY"):$PATH"

# --- the real database ----------------------------------------------------
"$PGF_SRC/scripts/pg-reference" start "$TMP/ref" >"$TMP/ref.out" || die "cannot start the reference PostgreSQL"
REF=1
PORT=$(awk '$1 == "port" {print $2}' "$TMP/ref.out")
PW='s3cr%2Bt' # "%2B" is what the f-string URL decodes to "+"
# The role is created by the superuser (trust on the reference server's
# loopback); the password travels in the statement, never on a command line.
printf "CREATE ROLE app LOGIN PASSWORD '%s';\nCREATE DATABASE appdb OWNER app;\n" "$PW" |
    timeout 30 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres >"$TMP/setup.log" 2>&1 ||
    die "cannot create the role: $(cat "$TMP/setup.log")"
export PG_UPSTREAM="127.0.0.1:$PORT" APP_DB_PASSWORD="$PW"
unset PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE || true

kinds() { # report.json -> the kinds of the failed checks, sorted, one line
    "$PY" -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["kind"] for s in r["scenarios"] for c in s["checks"] if not c["passed"])))' "$1"
}
# run SCENARIO_FILE NAME WANT_RC WANT_KINDS: one `pgfault run`, judged
run() {
    local out="$TMP/$2"
    timeout 150 "$PGFAULT" run "$1" --out "$out" >"$TMP/$2.log" 2>&1
    local rc=$?
    if [ "$rc" != "$3" ]; then
        fail "$2: exit $rc, want $3"
        tail -40 "$TMP/$2.log"
        [ -f "$out/service.stderr" ] && tail -20 "$out/service.stderr"
        return
    fi
    local got
    got=$(kinds "$out/report.json")
    [ "$got" = "$4" ] || fail "$2: failed checks '$got', want '$4'"
    grep -q "database at [^ ]*:[0-9]* (the fault proxy, upstream 127.0.0.1:$PORT)" "$TMP/$2.log" ||
        fail "$2: the console does not say the service went through the proxy: $(head -3 "$TMP/$2.log")"
}
count() { grep -c "$1" "$2" 2>/dev/null || true; }

# With no fault at all, even the buggy styles pass against the real server
# (with a generous health timeout: a real SCRAM login on a loaded CI machine
# can take longer than the incident's 0.5 s, and that alone trips the bug).
cat >"$TMP/py-nofaults.yaml" <<EOF
name: sqlalchemy-proxy-nofaults
server: {proxy: {upstream: "\${PG_UPSTREAM}"}}
client: {user: app, password: "\${APP_DB_PASSWORD}", database: appdb}
target:
  dir: "$PYEX"
  service: {command: [python3, app.py], env: {HEALTH_STYLE: buggy, HEALTH_TIMEOUT: "5"}, ready_timeout_ms: 20000}
  http: {url: "http://127.0.0.1:\${PORT}/healthz", quiet_ms: 500, timeout_ms: 8000}
workload: {sessions: 2, iterations: 6, think_ms: 100}
expect: {reasons: {healthy: [1.0, 1.0]}, idle_floor: 1}
EOF
cat >"$TMP/node-nofaults.yaml" <<EOF
name: node-pg-proxy-nofaults
server: {proxy: {upstream: "\${PG_UPSTREAM}"}}
client: {user: app, password: "\${APP_DB_PASSWORD}", database: appdb}
target:
  dir: "$NODEEX"
  service: {command: [node, app.js], env: {RELEASE_STYLE: double, HEALTH_TIMEOUT_MS: "5000"}, ready_timeout_ms: 15000}
  http: {url: "http://127.0.0.1:\${PORT}/healthz", quiet_ms: 500, timeout_ms: 8000}
workload: {sessions: 2, iterations: 6, think_ms: 50}
expect: {reasons: {healthy: [1.0, 1.0]}, idle_floor: 2}
EOF

# A login storm: pg.Pool with a wrong password and no think time.
cat >"$TMP/node-storm.yaml" <<EOF
name: node-pg-proxy-storm
server: {proxy: {upstream: "\${PG_UPSTREAM}"}}
client: {user: app, password: "\${APP_DB_PASSWORD}-old", database: appdb}
target:
  dir: "$NODEEX"
  service: {command: [node, app.js], env: {HEALTH_TIMEOUT_MS: "5000"}, ready_timeout_ms: 15000}
  http: {url: "http://127.0.0.1:\${PORT}/healthz", quiet_ms: 300, timeout_ms: 8000}
workload: {sessions: 4, iterations: 25, think_ms: 0}
EOF

python_incident_track() {
    run "$PYEX/proxy-buggy.yaml" py-buggy 1 "connection_leak exception_trace http_5xx idle_in_transaction"
    grep -q "IllegalStateChangeError: Method 'close()' can't be called here; method '_connection_for_bind()' is already in progress" \
        "$TMP/py-buggy/report.json" || fail "py-buggy: the IllegalStateChangeError is not in the witness"
    grep -q "database at /[^ ]*/cloudsql/proj:us-central1:db:5432 (the fault proxy" "$TMP/py-buggy.log" ||
        fail "py-buggy: the service did not get the proxy's Cloud SQL-style socket directory"
    grep -q "idle in transaction" "$TMP/py-buggy/report.json" || fail "py-buggy: no idle-in-transaction witness"
    # The fixed route must not have the incident's failure (no 500, no
    # IllegalStateChangeError, health green again) and must leave nothing
    # open. (The post-mortem's own fix, HEALTH_STYLE=postmortem, left the
    # session to asyncio's async-generator finalizer and was seen leaving
    # its pooled connection idle in transaction on a loaded machine; the
    # fixed route closes it in the request: examples/python-sqlalchemy.)
    timeout 150 "$PGFAULT" run "$PYEX/proxy-fixed.yaml" --out "$TMP/py-fixed" >"$TMP/py-fixed.log" 2>&1
    local rc=$? got
    got=$(kinds "$TMP/py-fixed/report.json" 2>/dev/null)
    if [ "$rc" != 0 ] || [ -n "$got" ]; then
        fail "py-fixed: exit $rc, failed checks '$got', want 0 and none"
        tail -30 "$TMP/py-fixed.log"
    fi
    grep -q "IllegalStateChangeError" "$TMP/py-fixed/service.stderr" && fail "py-fixed: IllegalStateChangeError in the service's log"
    grep -q "database at [^ ]*:[0-9]* (the fault proxy, upstream 127.0.0.1:$PORT)" "$TMP/py-fixed.log" ||
        fail "py-fixed: the console does not say the service went through the proxy"
    [ "$(count '"reason":"ok"' "$TMP/py-fixed/history.jsonl")" -ge 1 ] || fail "py-fixed: never healthy"
    [ "$(count '"reason":"timeout"' "$TMP/py-fixed/history.jsonl")" -ge 1 ] || fail "py-fixed: the stall was not felt"
}

python_url_track() {
    run "$TMP/py-nofaults.yaml" py-nofaults 0 ""
    run "$PYEX/proxy-fstring.yaml" py-fstring 1 "expectation"
    local bad ok
    bad=$(count '"reason":"auth_failed"' "$TMP/py-fstring/history.jsonl")
    ok=$(count '"reason":"ok"' "$TMP/py-fstring/history.jsonl")
    [ "$bad" -ge 14 ] && [ "$ok" = 0 ] || fail "py-fstring: $bad auth_failed and $ok healthy of 16, want >= 14 and 0"
    # the adapter target (AsyncSession over JSON lines) through the proxy:
    # closes raced against connects the proxy stalls are refused, no violation
    timeout 150 "$PGFAULT" run "$ADEX/proxy-incident.yaml" --out "$TMP/py-adapter" >"$TMP/py-adapter.log" 2>&1 ||
        fail "py-adapter: exit $?: $(tail -20 "$TMP/py-adapter.log")"
    [ "$(count '"error":"IllegalStateChangeError"' "$TMP/py-adapter/history.jsonl")" -ge 1 ] ||
        fail "py-adapter: no close was refused with IllegalStateChangeError"
    grep -q '"type":"fault".*"rule":"slow-auth"' "$TMP/py-adapter/history.jsonl" || fail "py-adapter: the stall never fired"
    grep -q "adapter pid [0-9]* (python3), database at 127.0.0.1:[0-9]* (the fault proxy, upstream 127.0.0.1:$PORT)" \
        "$TMP/py-adapter.log" || fail "py-adapter: the adapter did not go through the proxy"
}

node_track() {
    run "$TMP/node-nofaults.yaml" node-nofaults 0 ""
    run "$NODEEX/proxy-once.yaml" node-once 0 ""
    [ "$(count '"rule":"reset-query"' "$TMP/node-once/history.jsonl")" = 3 ] || fail "node-once: want 3 resets fired"
    [ "$(count '"reason":"connection_lost"' "$TMP/node-once/history.jsonl")" -ge 1 ] ||
        fail "node-once: the resets were not felt"
    run "$NODEEX/proxy-double.yaml" node-double 1 "exception_trace"
    grep -q "Release called on client which has already been released to the pool" "$TMP/node-double/junit.xml" ||
        fail "node-double: pg-pool's error is not in junit.xml"
    run "$NODEEX/proxy-wrong-password.yaml" node-wrongpw 0 ""
    local bad ok
    bad=$(count '"reason":"auth_failed"' "$TMP/node-wrongpw/history.jsonl")
    ok=$(count '"reason":"ok"' "$TMP/node-wrongpw/history.jsonl")
    [ "$bad" -ge 14 ] && [ "$ok" = 0 ] || fail "node-wrongpw: $bad auth_failed and $ok healthy of 16, want >= 14 and 0"
    # the proxy's wire observer saw PostgreSQL refuse the logins: the storm
    # check ran (and passed) from the first real 28P01 on
    "$PY" - "$TMP/node-wrongpw/report.json" <<'EOF' || fail "node-wrongpw: the login-storm check did not see the real 28P01s"
import json, re, sys
c = [c for c in json.load(open(sys.argv[1]))["scenarios"][0]["checks"] if c["name"].startswith("no login storm")]
m = re.match(r"at most (\d+) logins in one second after the first 28P01", c[0]["message"])
assert c[0]["passed"] and m and int(m.group(1)) >= 1, c
EOF
    # ... and the storm check can fail: no think time, four clients, every
    # login refused by PostgreSQL (the witness counts them per client)
    run "$TMP/node-storm.yaml" node-storm 1 "login_storm"
    grep -q "application_name '' from 127.0.0.1: 0 logins, [0-9]* refused" "$TMP/node-storm/report.json" ||
        fail "node-storm: the witness does not count the refused logins per client"
    # the database down (nothing listens on the upstream port): the proxy
    # answers 57P03 naming it, the service reports unreachable, and the run
    # fails naming the upstream
    local down
    down=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PG_UPSTREAM="127.0.0.1:$down" timeout 150 "$PGFAULT" run "$NODEEX/proxy-once.yaml" --out "$TMP/node-down" \
        >"$TMP/node-down.log" 2>&1
    local rc=$?
    [ "$rc" = 1 ] || fail "node-down: exit $rc, want 1"
    [ "$(kinds "$TMP/node-down/report.json")" = "unreachable" ] ||
        fail "node-down: failed checks '$(kinds "$TMP/node-down/report.json")', want 'unreachable'"
    grep -q "the proxy could not reach its upstream (127.0.0.1:$down) for any of [0-9]* sessions" "$TMP/node-down.log" ||
        fail "node-down: the verdict does not name the upstream: $(head -3 "$TMP/node-down.log")"
    bad=$(count '"reason":"unreachable"' "$TMP/node-down/history.jsonl")
    ok=$(count '"reason":"ok"' "$TMP/node-down/history.jsonl")
    [ "$bad" -ge 20 ] && [ "$ok" = 0 ] || fail "node-down: $bad unreachable and $ok healthy, want >= 20 and 0"
}

jvm_go_track() {
    run "$JAVAEX/proxy-try.yaml" java-try 0 ""
    [ "$(count '"reason":"canceled"' "$TMP/java-try/history.jsonl")" -ge 1 ] ||
        fail "java-try: the proxy's canceled statements were not felt"
    run "$JAVAEX/proxy-leak.yaml" java-leak 1 "no_recovery"
    run "$GOEX/proxy-request.yaml" go-request 0 ""
    [ "$(count '"reason":"timeout"' "$TMP/go-request/history.jsonl")" -ge 1 ] ||
        fail "go-request: the proxy's stalls were not felt"
    run "$GOEX/proxy-none.yaml" go-none 1 "deadline no_recovery"
}

# Four tracks side by side (each run has its own proxy, service and
# ports); each writes its own log, judged after all are done.
python_incident_track >"$TMP/track-pyinc.txt" 2>&1 &
PIDS+=($!)
python_url_track >"$TMP/track-pyurl.txt" 2>&1 &
PIDS+=($!)
node_track >"$TMP/track-node.txt" 2>&1 &
PIDS+=($!)
jvm_go_track >"$TMP/track-jvmgo.txt" 2>&1 &
PIDS+=($!)
wait "${PIDS[@]}"
PIDS=()
for t in pyinc pyurl node jvmgo; do
    cat "$TMP/track-$t.txt"
    n=$(grep -c '^FAIL: ' "$TMP/track-$t.txt")
    fails=$((fails + n))
done

# --- faults linked to what the service did ----------------------------------
# A fired fault in the history names its connection; the fault log adds the
# client port and the role, as with the fake server.
grep -q '"type":"fault","conn":[0-9]*,"phase":"auth-request","rule":"slow-auth","action":"stall"' \
    "$TMP/py-buggy/history.jsonl" || fail "py-buggy: the stall is not in the history"
"$PY" - "$TMP/py-buggy/faults.jsonl" "$TMP/node-once/faults.jsonl" <<'EOF' || fail "fault log records are not linked to the service's connections"
import json, sys
for path, tcp in zip(sys.argv[1:], (False, True)):  # py-buggy: the unix socket
    recs = [json.loads(l) for l in open(path)]
    assert recs, path + ": no fault fired"
    for r in recs:
        assert r["user"] == "app" and r["database"] == "appdb" and r["conn"] >= 1, r
        assert r.get("wall_time"), r
        if tcp:
            assert r["client_addr"] == "127.0.0.1" and r["client_port"] > 0, r
    # a query-phase fault happens after login: the real backend's pid is known
    for r in recs:
        if r["phase"] == "query":
            assert r.get("backend_pid", 0) > 0, r
EOF

# --- no password anywhere -----------------------------------------------------
for d in py-nofaults py-buggy py-fixed py-fstring py-adapter node-nofaults node-once node-double node-wrongpw node-storm node-down java-try java-leak go-request go-none; do
    [ -f "$TMP/$d/report.json" ] || fail "$d: no report.json"
done
leaks=$(grep -rlF -e "$PW" -e 's3cr+t' -e 's3cr%252Bt' "$TMP"/py-* "$TMP"/node-* "$TMP"/java-* "$TMP"/go-* "$TMP"/track-*.txt 2>/dev/null)
[ -z "$leaks" ] || fail "the password is in: $leaks"
grep -q 'password: \\"${APP_DB_PASSWORD}\\"' "$TMP/py-fixed/report.json" ||
    fail "py-fixed: the report does not keep the password's \${APP_DB_PASSWORD} form (a replay needs it)"

# --- bad combinations: exit 2, file:line:col, nothing run ---------------------
bad() { # NAME YAML WANT_MESSAGE
    printf '%s' "$2" >"$TMP/$1.yaml"
    timeout 30 "$PGFAULT" run "$TMP/$1.yaml" --out "$TMP/$1" >"$TMP/$1.log" 2>&1
    local rc=$?
    [ "$rc" = 2 ] || fail "$1: exit $rc, want 2"
    grep -qF "$3" "$TMP/$1.log" || fail "$1: message is '$(cat "$TMP/$1.log")', want '$3'"
    [ ! -e "$TMP/$1" ] || fail "$1: a run started"
}
T='target: {http: {url: "http://127.0.0.1:1/"}}'
bad ext "name: x
server: {external: 'host=127.0.0.1 port=1'}
$T
" "ext.yaml:2:20: a 'target' cannot use 'server.external'"
bad users "name: x
server:
  proxy: {upstream: '127.0.0.1:1'}
  users: [{name: app, password: pw}]
$T
" "users.yaml:4:10: 'server.users' configures the embedded fake server; with 'server.proxy' the real database decides"
bad unset "name: x
server: {proxy: {upstream: '\${PGF_NO_SUCH_VARIABLE}'}}
$T
" "unset.yaml:2:28: 'server.proxy.upstream': environment variable PGF_NO_SUCH_VARIABLE is not set"
bad sim "name: x
mode: sim
server: {proxy: {upstream: '127.0.0.1:1'}}
$T
" "sim.yaml:2:7: 'target' needs 'mode: stress'"

[ "$fails" = 0 ] && echo "example_proxy_real: all passed"
exit $((fails > 0))
