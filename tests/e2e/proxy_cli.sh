#!/usr/bin/env bash
# proxy_cli.sh - `pgfault proxy` as a command, in front of `pgfault serve`
# (no PostgreSQL needed, a few seconds):
#  - bad usage and bad rule files exit 2 naming the problem (file:line:col),
#    a listen address in use exits 3, and nothing is left listening;
#  - the upstream as a unix-socket directory (+ --upstream-port) and the
#    proxy's own --unix-socket-dir work with psql;
#  - the control API edits the proxy's rules live (`pgfault faults`), /down
#    and /up stop and resume accepting, /stats has the proxy's counters;
#  - the fault log names the rule, the client and the application.
# Bounded: timeouts on every client; everything started is killed by PID.
set -euo pipefail
: "${PGFAULT:?PGFAULT must name the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must name the source tree}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
command -v psql >/dev/null || fail "psql is not installed (scripts/install-deps)"
command -v curl >/dev/null || fail "curl is not installed (scripts/install-deps)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-proxy-cli.XXXXXX")
PROXY_PID=
trap 'for p in "${SERVE_PID:-}" "$PROXY_PID"; do if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; fi; done; rm -rf "$TMP"' EXIT
unset PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE PGAPPNAME || true

# expect_exit WANT_RC WANT_STDERR_SUBSTRING ARGS...
expect_exit() {
    local want=$1 text=$2 rc=0
    shift 2
    timeout 10 "$PGFAULT" proxy "$@" >"$TMP/o" 2>"$TMP/e" || rc=$?
    [ "$rc" = "$want" ] || fail "pgfault proxy $*: exit $rc, want $want ($(cat "$TMP/e"))"
    grep -qF -- "$text" "$TMP/e" || fail "pgfault proxy $*: stderr lacks '$text': $(cat "$TMP/e")"
}
expect_exit 2 "--upstream HOST:PORT|SOCKETDIR is required" --listen 127.0.0.1:0
expect_exit 2 "--upstream 'nonsense': expected HOST:PORT" --upstream nonsense --listen 127.0.0.1:0
expect_exit 2 "--connect-timeout 'x': expected an integer" --upstream 127.0.0.1:1 --connect-timeout x
printf 'rules:\n  - name: r\n    phase: query\n    action: close\n    side: sideways\n' >"$TMP/bad.yaml"
expect_exit 2 "$TMP/bad.yaml:5:11: 'side' must be 'client', 'upstream' or 'both', got 'sideways'" \
    --upstream 127.0.0.1:1 --listen 127.0.0.1:0 --faults "$TMP/bad.yaml"

mkdir "$TMP/fake" "$TMP/px"
start_serve "$TMP/fake" --user alice:apw:scram-sha-256
expect_exit 3 "cannot listen on 127.0.0.1:$SERVE_PORT" --upstream 127.0.0.1:1 --listen "127.0.0.1:$SERVE_PORT"

printf 'rules:\n  - {name: boom, phase: query, action: error, preset: admin-shutdown, match: {application_name: boom}}\n' \
    >"$TMP/rules.yaml"
"$PGFAULT" proxy --upstream "$TMP/fake" --upstream-port "$SERVE_PORT" --listen 127.0.0.1:0 \
    --unix-socket-dir "$TMP/px" --faults "$TMP/rules.yaml" --fault-log "$TMP/faults.jsonl" \
    --control 127.0.0.1:0 >"$TMP/px.out" 2>"$TMP/px.err" &
PROXY_PID=$!
for _ in $(seq 200); do
    grep -q '^control ' "$TMP/px.out" 2>/dev/null && break
    kill -0 "$PROXY_PID" 2>/dev/null || fail "the proxy exited early: $(cat "$TMP/px.err")"
    sleep 0.05 # polling while it starts, not a timing assertion
done
PX=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/px.out")
CTL=$(sed -n 's|^control http://||p' "$TMP/px.out")
[ -n "$PX" ] && [ -n "$CTL" ] || fail "proxy start lines: $(cat "$TMP/px.out")"
grep -qx "upstream $TMP/fake/.s.PGSQL.$SERVE_PORT" "$TMP/px.out" || fail "no upstream line: $(cat "$TMP/px.out")"

q() { # q APP HOST: psql through the proxy
    PGPASSWORD=apw PGCONNECT_TIMEOUT=5 timeout 20 psql -X -w -At \
        "host=$2 port=$PX user=alice dbname=app sslmode=disable application_name=$1" -c 'SELECT 42' 2>&1 || true
}
[ "$(q plain 127.0.0.1)" = 42 ] || fail "through the proxy to a unix-socket upstream: $(q plain 127.0.0.1)"
[ "$(q plain "$TMP/px")" = 42 ] || fail "through the proxy's own unix socket: $(q plain "$TMP/px")"
out=$(q boom 127.0.0.1)
grep -q 'FATAL:  terminating connection due to administrator command' <<<"$out" || fail "rule from --faults: $out"

# the control API: add a rule live, see it fire, remove it
curl -sf -XPOST "$CTL/rules" -d '{"name":"live","phase":"query","action":"error","severity":"ERROR","sqlstate":"40001","message":"live rule","match":{"application_name":"live"}}' >/dev/null ||
    fail "POST /rules"
grep -q 'ERROR:  live rule' <<<"$(q live 127.0.0.1)" || fail "the live rule did not fire"
"$PGFAULT" faults --control "$CTL" remove live >/dev/null || fail "pgfault faults remove"
[ "$(q live 127.0.0.1)" = 42 ] || fail "the removed rule still fires"
curl -sf -XPOST "$CTL/down" >/dev/null || fail "POST /down"
grep -q '"listening":false' <<<"$(curl -sf "$CTL/stats")" || fail "/stats after /down: $(curl -s "$CTL/stats")"
curl -sf -XPOST "$CTL/up" >/dev/null || fail "POST /up"
[ "$(q plain 127.0.0.1)" = 42 ] || fail "after /up"
stats=$(curl -sf "$CTL/stats")
/usr/bin/python3 -c 'import json,sys; s=json.loads(sys.argv[1])["server"]; assert s["sessions"] >= 6 and s["faults_fired"] == 2 and s["upstream_failures"] == 0, s' "$stats" ||
    fail "/stats: $stats"

/usr/bin/python3 - "$TMP/faults.jsonl" <<'EOF' || fail "fault log: $(cat "$TMP/faults.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["rule"] for r in recs] == ["boom", "live"], recs
assert all(r["client"].startswith("127.0.0.1:") and r["wall_time"] for r in recs), recs
assert recs[0]["application_name"] == "boom" and recs[0]["upstream_pid"] > 0, recs[0]
EOF

kill -TERM "$PROXY_PID"
rc=0
timeout 10 tail --pid="$PROXY_PID" -f /dev/null || fail "the proxy did not exit within 10 s of SIGTERM"
wait "$PROXY_PID" || rc=$?
PROXY_PID=
[ "$rc" = 0 ] || fail "the proxy exited $rc after SIGTERM: $(cat "$TMP/px.err")"
[ ! -e "$TMP/px/.s.PGSQL.$PX" ] || fail "the proxy left its socket file"
stop_serve "$TMP/fake"
echo PASS
