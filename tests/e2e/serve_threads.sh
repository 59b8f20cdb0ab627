#!/usr/bin/env bash
# serve_threads.sh - `pgfault serve --threads 2` end to end, with real
# clients (pgbench, psql) and the control API:
#   - pgbench with a new connection per transaction (TCP and unix socket)
#     is served by both loops: /stats' loop_accepted has both non-zero and
#     sums to accepted, every connection is closed after;
#   - a rule added through `pgfault faults add` reaches connections on both
#     loops (consecutive connections alternate loops), removing it restores;
#   - --history stays one well-formed history (serialized observers: seq
#     strictly increasing, counts consistent) that `pgfault check` accepts;
#   - a CancelRequest arriving on one loop cancels a backend on the other
#     (both ways, psycopg2);
#   - SIGTERM with a query running on each loop: exit 0, both clients see
#     the connection closed;
#   - bad --threads values exit 2 naming the value.
# Bounded: every wait has a deadline; only the processes started here are
# stopped.
set -euo pipefail
: "${PGFAULT:?}" "${PGF_SRC:?}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
command -v pgbench >/dev/null || fail "pgbench not found (postgresql-client-15)"
command -v psql >/dev/null || fail "psql not found"

tmp=$(mktemp -d)
serve_trap "$tmp"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; if [ -n "${SERVE_PID:-}" ]; then kill -9 "$SERVE_PID" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT

# bad values: exit 2, the value named
for bad in 0 65 x ""; do
    rc=0
    "$PGFAULT" serve --threads "$bad" >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "--threads '$bad' exited $rc, want 2"
    grep -q -- "--threads '$bad': expected 1..64 or 'cores'" "$tmp/bad.err" ||
        fail "--threads '$bad': $(cat "$tmp/bad.err")"
done

start_serve "$tmp" --threads 2 --user app::trust --control 127.0.0.1:0 --history "$tmp/h.jsonl"
grep -q '^threads 2$' "$tmp/serve.out" || fail "no 'threads 2' line: $(cat "$tmp/serve.out")"
CONTROL=$(sed -n 's/^control \(http:.*\)$/\1/p' "$tmp/serve.out")
[ -n "$CONTROL" ] || fail "no control line: $(cat "$tmp/serve.out")"

stats() { "$PGFAULT" faults --control "${CONTROL#http://}" stats; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# each step says when it starts, with the time: a run that ctest stops at its timeout shows
# where it was (one TSan run under load once hung here for 300 s with no output)
step() { echo "serve_threads: $(date +%T) $*"; }

# 1. many connections, both loops
step "1. many connections, both loops"
echo 'SELECT 1;' >"$tmp/select1.sql"
timeout 60 pgbench -n -C -c 4 -j 2 -t 25 -f "$tmp/select1.sql" -h 127.0.0.1 -p "$SERVE_PORT" \
    -U app postgres >"$tmp/pgbench.out" 2>&1 || fail "pgbench (tcp): $(cat "$tmp/pgbench.out")"
timeout 60 pgbench -n -C -c 4 -j 2 -t 25 -f "$tmp/select1.sql" -h "$tmp" -p "$SERVE_PORT" \
    -U app postgres >"$tmp/pgbench2.out" 2>&1 || fail "pgbench (unix): $(cat "$tmp/pgbench2.out")"
for i in $(seq 200); do
    [ "$(stats | json 'd["server"]["active"]')" = 0 ] && break
    sleep 0.05 # polling interval, not a timing assertion
done
s=$(stats)
echo "$s" | json 'd["server"]' >"$tmp/server.txt"
[ "$(echo "$s" | json 'd["server"]["threads"]')" = 2 ] || fail "threads: $s"
[ "$(echo "$s" | json 'd["server"]["active"]')" = 0 ] || fail "connections left open: $s"
# 200 transactions, one connection each (+ pgbench's own first connections)
echo "$s" | json 'd["server"]["accepted"] >= 200 and d["server"]["closed"] == d["server"]["accepted"]' |
    grep -qx True || fail "accepted/closed: $s"
echo "$s" | json 'all(n > 0 for n in d["server"]["loop_accepted"]) and sum(d["server"]["loop_accepted"]) == d["server"]["accepted"]' |
    grep -qx True || fail "loop_accepted: $s"
# round robin: the two loops differ by at most one
echo "$s" | json 'abs(d["server"]["loop_accepted"][0] - d["server"]["loop_accepted"][1]) <= 1' |
    grep -qx True || fail "not round robin: $s"

# 2. a live rule edit reaches both loops
step "2. a live rule edit"
q() { timeout 20 psql "host=127.0.0.1 port=$SERVE_PORT user=app dbname=postgres" -XAtc 'SELECT 1' 2>&1 || true; }
"$PGFAULT" faults --control "${CONTROL#http://}" add \
    '{"name":"all-fail","phase":"query","action":"error","sqlstate":"55000","message":"edited live"}' \
    >/dev/null || fail "faults add"
for i in 1 2 3 4; do
    out=$(q)
    echo "$out" | grep -q 'edited live' || fail "connection $i after the edit: $out"
done
"$PGFAULT" faults --control "${CONTROL#http://}" remove all-fail >/dev/null || fail "faults remove"
for i in 1 2; do
    [ "$(q)" = 1 ] || fail "connection $i after removing the rule: $(q)"
done
[ "$(stats | json 'd["server"]["faults_fired"]')" = 4 ] || fail "faults_fired: $(stats)"

step "3. cancels crossing loops"
# 3. cancels crossing loops: a and b are consecutive connections (one per loop); one more
# connection shifts the ids, so each CancelRequest lands on the loop that does not serve
# its backend and must be posted to the other (psycopg2, the Debian package: required)
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null ||
    fail "psycopg2 missing for /usr/bin/python3 (scripts/install-deps installs python3-psycopg2)"
timeout 60 /usr/bin/python3 - "$SERVE_PORT" "${CONTROL}" <<'PY' || fail "cancel across loops"
import json, sys, threading, time, urllib.request
import psycopg2
port, control = sys.argv[1], sys.argv[2]
def stats():
    return json.load(urllib.request.urlopen(control + "/stats", timeout=10))["server"]
dsn = "host=127.0.0.1 port=%s user=app dbname=postgres sslmode=disable" % port
a = psycopg2.connect(dsn)
b = psycopg2.connect(dsn)
psycopg2.connect(dsn).close()
a.autocommit = b.autocommit = True  # no BEGIN: the next query the server counts is pg_sleep
before = stats()
results = {}
def sleep_in(name, c):
    try:
        c.cursor().execute("SELECT pg_sleep(30)")
        results[name] = "finished"
    except psycopg2.extensions.QueryCanceledError:
        results[name] = "canceled"
    except Exception as e:
        results[name] = repr(e)
for i, (name, c) in enumerate((("a", a), ("b", b))):
    t = threading.Thread(target=sleep_in, args=(name, c))
    t.start()
    deadline = time.monotonic() + 20
    while stats()["queries"] < before["queries"] + i + 1:  # the server has the query
        assert time.monotonic() < deadline, "the query never reached the server"
        time.sleep(0.02)  # polling interval, not a timing assertion
    c.cancel()
    t.join(25)
    assert results.get(name) == "canceled", results
after = stats()
assert after["cancel_requests"] == before["cancel_requests"] + 2, (before, after)
assert after["canceled"] == before["canceled"] + 2, (before, after)
a.close()
b.close()
PY

# 4. stop with a query running on each loop
step "4. stop with a query on each loop"
# the count before the sleepers start: read after them, it could already
# hold their queries (a slow build: TSan), and the wait below would outlast
# their 60 s
before=$(stats | json 'd["server"]["queries"]')
psql "host=127.0.0.1 port=$SERVE_PORT user=app dbname=postgres" -XAtc 'SELECT pg_sleep(60)' \
    >"$tmp/long1.out" 2>&1 &
PIDS+=($!)
psql "host=$tmp port=$SERVE_PORT user=app dbname=postgres" -XAtc 'SELECT pg_sleep(60)' \
    >"$tmp/long2.out" 2>&1 &
PIDS+=($!)
for i in $(seq 400); do
    [ "$(stats | json 'd["server"]["queries"]')" -ge $((before + 2)) ] && break
    sleep 0.05
done
stats | json 'd["server"]["active"]' | grep -qx 2 || fail "the two sleepers are not both open: $(stats)"
step "4. stopping the server"
stop_serve "$tmp"
for p in "${PIDS[@]}"; do
    rc=0
    timeout 20 tail --pid="$p" -f /dev/null || fail "a client did not end when the server stopped"
    wait "$p" || rc=$?
    [ "$rc" -ne 0 ] || fail "a sleeping client exited 0 after the server stopped"
done
grep -q 'server closed the connection unexpectedly\|terminating connection' "$tmp/long1.out" ||
    fail "tcp client: $(cat "$tmp/long1.out")"
grep -q 'server closed the connection unexpectedly\|terminating connection' "$tmp/long2.out" ||
    fail "unix client: $(cat "$tmp/long2.out")"

# 5. the history: one writer at a time, counts that add up
step "5. the history"
python3 - "$tmp/h.jsonl" <<'EOF' || fail "history"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
seqs = [r["seq"] for r in recs if "seq" in r]
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "seq not strictly increasing"
acc = sum(1 for r in recs if r.get("event") == "accepted")
clo = sum(1 for r in recs if r.get("event") == "closed")
assert acc == clo and acc >= 211, (acc, clo)
last = recs[-1]
assert last["event"] == "stopped" and last["conns_open"] == 0, last
conns = {r["conn"] for r in recs if r.get("event") == "accepted"}
assert conns == set(range(1, acc + 1)), "connection ids are not 1..N"
EOF
rc=0
timeout 60 "$PGFAULT" check "$tmp/h.jsonl" >"$tmp/check.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "pgfault check of the server history exited $rc: $(cat "$tmp/check.out")"
echo "ok"
