#!/usr/bin/env bash
# orm_faultlink.sh - faults linked to clients. A small "service" (psycopg2,
# application_name svc-health) runs its health check through pgfault serve
# over TCP and over the unix socket; a rule kills the check's connection
# (FATAL 57P01). Checked:
#  - every fault-log record names the client (address+port, or the socket
#    path), the backend pid the client was given, application_name and a
#    wall-clock time;
#  - serve --history writes the server's view (accepted, authenticated,
#    query, fault, closed with the fault's rule) and is a valid history;
#  - a foreign history that names only the backend pid is linked to its
#    fault by `pgfault check --server-history` (agrees: exit 0), and a
#    wrong reason is reported MISCLASSIFIED (exit 1).
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
here=$(dirname "$0")
. "$here/serve_lib.bash"
PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg (3) missing (scripts/install-deps)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-link-XXXXXX")
serve_trap "$tmp"
cat >"$tmp/faults.yaml" <<'YAML'
rules:
  - name: kill-health
    phase: query
    action: error
    severity: FATAL
    sqlstate: 57P01
    message: terminating connection due to administrator command
    match: {query: "pg_stat_activity"}
YAML
start_serve "$tmp" --user svc:svc-pw:scram-sha-256 --faults "$tmp/faults.yaml" \
    --fault-log "$tmp/faults.jsonl" --history "$tmp/server.jsonl"

# The service: its own history names only what a client knows (its backend pid).
timeout 60 "$PY" - "$SERVE_PORT" "$tmp" >"$tmp/service.out" <<'PYEOF'
import json, sys
import psycopg

port, tmp = int(sys.argv[1]), sys.argv[2]
seq = 0
out = open(tmp + "/foreign.jsonl", "w")
out.write(json.dumps({"type": "meta", "format": "pgfault-history", "version": 1,
                      "tool": "svc-health.py"}) + "\n")
for session, host in enumerate(("127.0.0.1", tmp), 1):
    c = psycopg.connect(host=host, port=port, user="svc", password="svc-pw", dbname="app",
                        application_name="svc-health", sslmode="disable")
    pid = c.info.backend_pid
    try:
        c.execute("SELECT 1 FROM pg_stat_activity")
        reason = "ok"
    except psycopg.OperationalError as e:  # the service's own classifier
        shutdown = e.sqlstate == "57P01" or "administrator command" in str(e)
        reason = "shutting_down" if shutdown else "connection_lost"
    seq += 1
    out.write(json.dumps({"seq": seq, "time_ns": seq, "type": "health", "session": session,
                          "reason": reason, "backend_pid": pid}) + "\n")
    print(session, host, pid, reason)
PYEOF
stop_serve "$tmp"
[ "$(awk '{print $4}' "$tmp/service.out" | sort -u)" = shutting_down ] ||
    fail "the service should see shutting_down twice: $(cat "$tmp/service.out")"
pid_tcp=$(awk '$1 == 1 {print $3}' "$tmp/service.out")
pid_unix=$(awk '$1 == 2 {print $3}' "$tmp/service.out")

# fault log: who, for each of the two faults
"$PY" - "$tmp/faults.jsonl" "$pid_tcp" "$pid_unix" "$SERVE_SOCK" <<'PYEOF' || fail "fault-log fields (above)"
import json, re, sys
path, pid_tcp, pid_unix, sock = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
recs = [json.loads(l) for l in open(path)]
assert len(recs) == 2, recs
tcp, unix = recs
for r, pid in ((tcp, pid_tcp), (unix, pid_unix)):
    assert r["rule"] == "kill-health" and r["backend_pid"] == pid, r
    assert r["application_name"] == "svc-health" and r["user"] == "svc", r
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["wall_time"]), r
assert tcp["client_addr"] == "127.0.0.1" and 0 < tcp["client_port"] < 65536, tcp
assert unix["client_socket"] == sock and "client_port" not in unix, unix
print("fault log: client address/port and socket, backend pid, application_name, wall time: ok")
PYEOF

# the server's view
"$PGFAULT" check "$tmp/server.jsonl" >"$tmp/server.check" || fail "server history invalid: $(cat "$tmp/server.check")"
"$PY" - "$tmp/server.jsonl" "$tmp/faults.jsonl" "$pid_tcp" <<'PYEOF' || fail "server history content (above)"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])][1:]
fl = [json.loads(l) for l in open(sys.argv[2])]
pid = int(sys.argv[3])
mine = [r for r in recs if r.get("backend_pid") == pid]
events = [r.get("event", r["type"]) for r in mine]
assert events[0] == "authenticated" and events[-2:] == ["fault", "closed"], events
assert mine[-3]["query"] == "SELECT 1 FROM pg_stat_activity", mine[-3]
closed = mine[-1]
assert closed["fault_rule"] == "kill-health", closed
acc = [r for r in recs if r.get("event") == "accepted" and r["conn"] == closed["conn"]][0]
assert acc["client_port"] == fl[0]["client_port"], (acc, fl[0])  # same client, both files
assert recs[-1]["event"] == "stopped" and recs[-1]["conns_open"] == 0, recs[-1]
print("server history: accepted/authenticated/query/fault/closed-by-fault with the client: ok")
PYEOF

# the join
"$PGFAULT" check "$tmp/foreign.jsonl" --server-history "$tmp/server.jsonl" >"$tmp/join.out" ||
    fail "join should agree: $(cat "$tmp/join.out")"
grep -q "2 agree with their fault, 0 misclassified" "$tmp/join.out" || fail "join: $(cat "$tmp/join.out")"
grep -q "(backend_pid $pid_tcp) -> conn 1 -> .*fault kill-health (error at query, 57P01) predicts shutting_down: agrees" "$tmp/join.out" ||
    fail "join: the TCP check is not linked to its fault: $(cat "$tmp/join.out")"
sed 's/"shutting_down"/"connection_lost"/' "$tmp/foreign.jsonl" >"$tmp/wrong.jsonl"
rc=0
"$PGFAULT" check "$tmp/wrong.jsonl" --server-history "$tmp/server.jsonl" >"$tmp/wrong.out" || rc=$?
[ "$rc" -eq 1 ] || fail "a misclassified health result should exit 1, got $rc: $(cat "$tmp/wrong.out")"
grep -q "MISCLASSIFIED" "$tmp/wrong.out" || fail "join: $(cat "$tmp/wrong.out")"
echo "join: health results linked to their faults by backend pid: ok"
echo PASS
