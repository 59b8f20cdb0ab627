#!/usr/bin/env bash
# proxy_real.sh - `pgfault proxy` in front of a real PostgreSQL 15
# (scripts/pg-reference: temp dir, free loopback port, SCRAM role), with the
# same rule file (tests/data/proxy-faults.yaml) also given to `pgfault serve`:
#  - psql and pgbench (simple, extended, prepared) observe exactly the same
#    exit status, stdout and stderr through the proxy as on the fake, for
#    every fault in the file and without one;
#  - real SQL (tables, JSON) and SCRAM work end to end; sslmode=prefer is
#    answered 'N', sslmode=require fails as against a server without SSL;
#  - a CancelRequest through the proxy cancels the real backend (57014);
#  - a slow reader of a 200 MB result does not make the proxy buffer it;
#  - the fault log carries client address, application_name, the upstream
#    backend pid (equal to pg_backend_pid()) and wall time;
#  - a client that gives up during a stall forever releases its backend;
#  - an unreachable upstream gives FATAL 57P03 naming it, the proxy keeps
#    running, and the event is in the fault log; SIGTERM exits 0.
#
# Bounded: every client has a timeout(1); everything started here is killed
# by PID in the EXIT trap; loopback and a temp dir only. A missing server or
# client FAILS (scripts/install-deps installs them).
set -euo pipefail
: "${PGFAULT:?PGFAULT must name the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must name the source tree}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
for t in psql pgbench curl; do command -v $t >/dev/null || fail "$t is not installed (scripts/install-deps)"; done
PY=/usr/bin/python3
$PY -c 'import psycopg2' 2>/dev/null || fail "python3-psycopg2 is not installed (scripts/install-deps)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-proxy-real.XXXXXX")
chmod 0711 "$TMP" # the reference server runs as the postgres user
REF=
PROXY_PID=
DOWN_PID=
cleanup() {
    for p in "${SERVE_PID:-}" "$PROXY_PID" "$DOWN_PID"; do
        if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; fi
    done
    if [ -n "$REF" ]; then "$PGF_SRC/scripts/pg-reference" stop "$TMP/ref" >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
unset PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE PGAPPNAME PGCONNECT_TIMEOUT || true
export PGPASSFILE=$TMP/no-such-passfile
RULES=$PGF_SRC/tests/data/proxy-faults.yaml

"$PGF_SRC/scripts/pg-reference" start "$TMP/ref" >"$TMP/ref.out" || fail "cannot start the reference PostgreSQL"
REF=1
REF_PORT=$(awk '$1 == "port" {print $2}' "$TMP/ref.out")

# start_proxy DIR ARGS...: sets PROXY_PID/PROXY_PORT (or DOWN_* via caller).
start_proxy() {
    local dir=$1
    shift
    mkdir -p "$dir"
    "$PGFAULT" proxy --listen 127.0.0.1:0 --unix-socket-dir "$dir" "$@" >"$dir/out" 2>"$dir/err" &
    STARTED_PID=$!
    local i
    for i in $(seq 200); do
        grep -q '^upstream ' "$dir/out" 2>/dev/null && break
        kill -0 "$STARTED_PID" 2>/dev/null || fail "pgfault proxy exited early: $(cat "$dir/err")"
        sleep 0.05 # polling while it starts, not a timing assertion
    done
    STARTED_PORT=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/out")
    [ -n "$STARTED_PORT" ] || fail "no 'listening tcp' line from the proxy: $(cat "$dir/out")"
}

mkdir "$TMP/fake"
start_serve "$TMP/fake" --user pgf_scram:pgf_scram_pw:scram-sha-256 --faults "$RULES" --seed 3
start_proxy "$TMP/px" --upstream "127.0.0.1:$REF_PORT" --faults "$RULES" --seed 3 \
    --fault-log "$TMP/px/faults.jsonl"
PROXY_PID=$STARTED_PID
PX=$STARTED_PORT
echo "PostgreSQL 127.0.0.1:$REF_PORT, fake 127.0.0.1:$SERVE_PORT, proxy 127.0.0.1:$PX"

# observe PORT APP ARGS...: psql as the SCRAM role; prints rc, stdout, stderr
# with the port normalized.
observe() {
    local port=$1 app=$2
    shift 2
    local rc=0
    PGPASSWORD=pgf_scram_pw PGCONNECT_TIMEOUT=5 timeout 30 psql -X -w -At \
        "host=127.0.0.1 port=$port user=pgf_scram dbname=postgres sslmode=disable application_name=$app" \
        "$@" >"$TMP/o" 2>"$TMP/e" || rc=$?
    echo "rc=$rc"
    cat "$TMP/o"
    sed "s/port $port failed/port PORT failed/" "$TMP/e"
}

# 1. psql: every fault in the file (and none) looks the same on both.
n=0
for app in plain px-auth-fail px-57p03 px-close px-error px-fatal px-row-error px-truncate \
    px-garbage px-reset px-crash px-stall px-delay px-drip px-up-reset; do
    observe "$SERVE_PORT" "$app" -c 'SELECT 1' -c 'SELECT 2' -c 'SELECT 3' >"$TMP/fake.txt"
    observe "$PX" "$app" -c 'SELECT 1' -c 'SELECT 2' -c 'SELECT 3' >"$TMP/proxy.txt"
    diff -u --label "fake $app" "$TMP/fake.txt" --label "proxy $app" "$TMP/proxy.txt" ||
        fail "psql with $app: the proxy in front of PostgreSQL differs from the fake (above)"
    n=$((n + 1))
done
grep -q '^rc=0$' <(observe "$PX" plain -c 'SELECT 1') || fail "plain psql through the proxy failed"
grep -qx 'FATAL:  terminating connection due to administrator command' <(observe "$PX" px-fatal -c 'SELECT 1' -c 'SELECT 2') ||
    fail "px-fatal: no FATAL 57P01 text through the proxy"
echo "psql: $n cases identical on the fake and through the proxy"
# a client that gives up on a stall forever must not leave its backend behind
rc=0
PGPASSWORD=pgf_scram_pw timeout 1 psql -X -w "host=127.0.0.1 port=$PX user=pgf_scram dbname=postgres application_name=px-stall-forever" \
    -c 'SELECT 1' >/dev/null 2>&1 || rc=$?
[ "$rc" = 124 ] || fail "stall forever: psql was not stalled (rc=$rc)"
left=1
for i in $(seq 100); do
    left=$(psql -X -At "host=127.0.0.1 port=$REF_PORT user=postgres dbname=postgres" \
        -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'px-stall-forever'")
    [ "$left" = 0 ] && break
    sleep 0.05 # polling until the backend exits (bounded), not a timing assertion
done
[ "$left" = 0 ] || fail "stall forever: the backend outlived its client"

# side: upstream reset the backend's connection, not the client's: PostgreSQL logs it
grep -q 'could not receive data from client: Connection reset by peer' "$TMP/ref/server.log" ||
    fail "side: upstream did not reset the upstream connection (server log: $(tail -n 5 "$TMP/ref/server.log"))"


# 2. pgbench, simple/extended/prepared, with and without a fault.
printf 'SELECT 2;\n' >"$TMP/s.sql"
pgb() {
    local port=$1 app=$2 mode=$3 rc=0
    PGPASSWORD=pgf_scram_pw PGAPPNAME=$app timeout 60 pgbench -n -M "$mode" -f "$TMP/s.sql" -t 3 -c 1 \
        "host=127.0.0.1 port=$port user=pgf_scram dbname=postgres sslmode=disable" >"$TMP/pb" 2>&1 || rc=$?
    echo "rc=$rc"
    # the clients run concurrently: their lines come in any order
    grep -v -E '^(latency|tps|initial connection|pgbench \()' "$TMP/pb" | sed "s/port $port/port PORT/" |
        LC_ALL=C sort
}
for mode in simple extended prepared; do
    for app in plain px-error px-fatal px-row-error; do
        pgb "$SERVE_PORT" $app $mode >"$TMP/fake.txt"
        pgb "$PX" $app $mode >"$TMP/proxy.txt"
        diff -u --label "fake pgbench $mode $app" "$TMP/fake.txt" --label "proxy" "$TMP/proxy.txt" ||
            fail "pgbench -M $mode with $app differs through the proxy (above)"
    done
done
grep -q 'number of failed transactions: 3 (100.000%)' <(pgb "$PX" px-error prepared) ||
    fail "pgbench -M prepared: the query fault did not fire on every Execute"
echo "pgbench: simple, extended and prepared identical on the fake and through the proxy"

# 3. Real SQL and SCRAM end to end; the default pgbench workload (as the
# superuser: PostgreSQL 15 lets only owners create in public); SSL.
out=$(observe "$PX" plain -c 'CREATE TEMP TABLE t (id int, doc jsonb)' \
    -c "INSERT INTO t SELECT g, jsonb_build_object('n', g) FROM generate_series(1, 300) g" \
    -c "SELECT sum((doc->>'n')::int) FROM t")
[ "$(printf '%s\n' "$out" | tail -n 1)" = 45150 ] || fail "real SQL through the proxy: $out"
timeout 60 pgbench -i -s 1 -q "host=127.0.0.1 port=$PX user=postgres dbname=postgres" \
    >"$TMP/pbi" 2>&1 || fail "pgbench -i through the proxy: $(tail -n 3 "$TMP/pbi")"
timeout 60 pgbench -t 50 -c 2 -M extended "host=127.0.0.1 port=$PX user=postgres dbname=postgres" \
    >"$TMP/pb" 2>&1 || fail "pgbench TPC-B through the proxy: $(tail -n 3 "$TMP/pb")"
grep -q 'number of failed transactions: 0' "$TMP/pb" || fail "pgbench TPC-B had failures: $(cat "$TMP/pb")"
rc=0
PGPASSWORD=pgf_scram_pw timeout 10 psql -X -w -At "host=127.0.0.1 port=$PX user=pgf_scram dbname=postgres sslmode=prefer" \
    -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' >"$TMP/o" 2>&1 || rc=$?
[ "$rc" = 0 ] && [ "$(cat "$TMP/o")" = f ] || fail "sslmode=prefer through the proxy: rc=$rc $(cat "$TMP/o")"
rc=0
PGPASSWORD=pgf_scram_pw timeout 10 psql -X -w "host=127.0.0.1 port=$PX user=pgf_scram dbname=postgres sslmode=require" \
    -c 'SELECT 1' >"$TMP/o" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q 'server does not support SSL, but SSL was required' "$TMP/o" ||
    fail "sslmode=require through the proxy: rc=$rc $(cat "$TMP/o")"
# over the proxy's unix socket too
[ "$(PGPASSWORD=pgf_scram_pw timeout 10 psql -X -w -At "host=$TMP/px port=$PX user=pgf_scram dbname=postgres" -c 'SELECT 40+2')" = 42 ] ||
    fail "psql through the proxy's unix socket"
echo "real SQL, pgbench TPC-B, SSL negotiation and the unix socket work through the proxy"

# 4. Cancel: BackendKeyData passes through; the CancelRequest reaches the backend.
$PY - "$PX" >"$TMP/cancel" 2>&1 <<'EOF' || fail "cancel through the proxy: $(cat "$TMP/cancel")"
import sys, threading, time, psycopg2
c = psycopg2.connect(host="127.0.0.1", port=sys.argv[1], user="pgf_scram", password="pgf_scram_pw",
                     dbname="postgres", sslmode="disable", connect_timeout=5)
threading.Timer(0.3, c.cancel).start()
t = time.monotonic()
try:
    c.cursor().execute("SELECT pg_sleep(20)")
    sys.exit("pg_sleep was not canceled")
except psycopg2.errors.QueryCanceled as e:
    assert e.pgcode == "57014", e.pgcode
    assert time.monotonic() - t < 15
print("canceled")
EOF
echo "cancel: $(cat "$TMP/cancel")"

# 4b. Backpressure: a client that asks for 200 MB and reads slowly does not
# make the proxy buffer the result.
$PY - "$PX" <<'EOF' || fail "slow reader through the proxy"
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
params = b"user\0postgres\0database\0postgres\0\0"
s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
buf = b""
while b"Z\0\0\0\x05" not in buf:  # trust login: read up to ReadyForQuery
    buf += s.recv(65536)
q = b"SELECT repeat('x', 1000) FROM generate_series(1, 200000)\0"
s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
n = 0
for _ in range(20):
    n += len(s.recv(4096))
    time.sleep(0.05)  # a slow reader, on purpose
assert n > 0
EOF
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status")
[ "$hwm" -lt 65536 ] || fail "the proxy buffered a slow client's result: VmHWM ${hwm} kB"
echo "backpressure: 200 MB result to a slow reader, proxy peak RSS ${hwm} kB"

# 5. The fault log links each fault to its client and upstream backend.
out=$(observe "$PX" px-fatal -c 'SELECT pg_backend_pid()' -c 'SELECT 2')
pid=$(printf '%s\n' "$out" | sed -n 2p)
[ -n "$pid" ] || fail "no backend pid: $out"
$PY - "$TMP/px/faults.jsonl" "$pid" <<'EOF' || fail "fault log: $(tail -n 3 "$TMP/px/faults.jsonl")"
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
fatal = [r for r in recs if r.get("rule") == "query-fatal"]
assert fatal, "no query-fatal record"
r = fatal[-1]
assert r["upstream_pid"] == int(sys.argv[2]), (r, sys.argv[2])
assert re.fullmatch(r"127\.0\.0\.1:\d+", r["client"]), r
assert r["application_name"] == "px-fatal" and r["phase"] == "query" and r["action"] == "error", r
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["wall_time"]), r
assert {x["rule"] for x in recs if "rule" in x} >= {"auth-fail", "startup-close", "datarow-truncate"}
EOF
echo "fault log: client, application_name, upstream_pid ($pid) and wall_time recorded"

# 6. Upstream down: 57P03 naming it, the proxy keeps running, logged.
closed_port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_proxy "$TMP/down" --upstream "127.0.0.1:$closed_port" --fault-log "$TMP/down/faults.jsonl"
DOWN_PID=$STARTED_PID
for i in 1 2; do
    got=$(observe "$STARTED_PORT" down -c 'SELECT 1')
    want="rc=2
psql: error: connection to server at \"127.0.0.1\", port PORT failed: FATAL:  the database system is not accepting connections
DETAIL:  pgfault proxy: upstream 127.0.0.1:$closed_port: Connection refused"
    [ "$got" = "$want" ] || fail "upstream down, try $i:
--- got
$got
--- want
$want"
    kill -0 "$DOWN_PID" || fail "the proxy died after an unreachable upstream"
done
[ "$(grep -c '"event":"upstream-unreachable"' "$TMP/down/faults.jsonl")" = 2 ] ||
    fail "upstream failures not in the fault log: $(cat "$TMP/down/faults.jsonl")"
grep -q '"application_name":"down"' "$TMP/down/faults.jsonl" || fail "no application_name in the upstream event"
echo "upstream down: 57P03 with the address, proxy alive, 2 events logged"

# 7. SIGTERM: exit 0, socket removed, coverage printed.
for p in PROXY DOWN; do
    pidvar=${p}_PID
    kill -TERM "${!pidvar}"
    rc=0
    timeout 10 tail --pid="${!pidvar}" -f /dev/null || fail "the proxy did not exit within 10 s of SIGTERM"
    wait "${!pidvar}" || rc=$?
    [ "$rc" = 0 ] || fail "the proxy exited $rc after SIGTERM"
    eval "$pidvar="
done
[ ! -e "$TMP/px/.s.PGSQL.$PX" ] || fail "the proxy left its unix socket behind"
grep -q '^coverage {"faults_fired":' "$TMP/px/out" || fail "no coverage line at exit"
stop_serve "$TMP/fake"
echo PASS
