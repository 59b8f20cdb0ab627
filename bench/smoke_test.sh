#!/bin/bash
# bench/smoke_test.sh - keeps the benchmark helpers honest in `make test`
# (about a second): each must produce a real measurement, not just build.
# Env: BENCH_BIN (dir with loopback_limit, idle_conns, pbkdf2_rate, relay_limit,
# stream_cost), PGFAULT.
set -euo pipefail
fail() { echo "bench smoke: $*" >&2; exit 1; }
tmp=$(mktemp -d)
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# raw loopback: connections made, none failed
out=$("$BENCH_BIN/loopback_limit" -c 4 -j 2 -T 0.3)
/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["connections"] > 0 and r["errors"] == 0 and r["rate"] > 0, r' "$out" \
    || fail "loopback_limit: $out"
"$BENCH_BIN/loopback_limit" -c 1 -j 2 -T 1 2>/dev/null && fail "loopback_limit accepted -j > -c"

# PBKDF2 ceiling: derivations made
out=$("$BENCH_BIN/pbkdf2_rate" -j 1 -T 0.2)
/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["derivations"] > 0 and r["us_per_derivation"] > 0, r' "$out" \
    || fail "pbkdf2_rate: $out"

# idle connections against the fake server: all K connect, then all close
"$PGFAULT" serve --listen 127.0.0.1:0 --user bench_trust:unused:trust >"$tmp/serve.out" 2>"$tmp/serve.err" &
srv=$!
for _ in $(seq 100); do grep -q '^listening tcp' "$tmp/serve.out" && break; sleep 0.05; done
port=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/serve.out")
[ -n "$port" ] || fail "pgfault serve did not start: $(cat "$tmp/serve.err")"
line=$(echo | "$BENCH_BIN/idle_conns" -d "host=127.0.0.1 port=$port user=bench_trust dbname=postgres sslmode=disable" -n 50 -t 20)
case "$line" in "ready 50 "*) ;; *) fail "idle_conns -n 50 printed '$line'" ;; esac
# an unknown role must fail with the server's message, not hang or pass
if echo | "$BENCH_BIN/idle_conns" -d "host=127.0.0.1 port=$port user=nobody dbname=postgres sslmode=disable" -n 3 -t 20 2>"$tmp/err"; then
    fail "idle_conns succeeded for an unknown role"
fi
grep -q 'nobody' "$tmp/err" || fail "idle_conns error does not name the role: $(cat "$tmp/err")"
# the bare relay (bench/proxy's floor): sessions through it reach the server
"$BENCH_BIN/relay_limit" --upstream "127.0.0.1:$port" >"$tmp/relay.out" 2>"$tmp/relay.err" &
relay=$!
for _ in $(seq 100); do grep -q '^listening tcp' "$tmp/relay.out" && break; sleep 0.05; done
rport=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/relay.out")
[ -n "$rport" ] || { kill "$relay"; fail "relay_limit did not start: $(cat "$tmp/relay.err")"; }
line=$(echo | "$BENCH_BIN/idle_conns" -d "host=127.0.0.1 port=$rport user=bench_trust dbname=postgres sslmode=disable" -n 20 -t 20)
kill "$relay" && wait "$relay" || true
case "$line" in "ready 20 "*) ;; *) fail "idle_conns -n 20 through relay_limit printed '$line'" ;; esac
# the history stream's stages per record (stream_cost) on a small sim run's history
"$PGFAULT" run --scenario cancel-race --seed 3 --iterations 2 --sessions 4 --out "$tmp/sc" \
    >"$tmp/sc.out" 2>&1 || true
[ -s "$tmp/sc/history.jsonl" ] || fail "no history for stream_cost: $(tail -3 "$tmp/sc.out")"
out=$("$BENCH_BIN/stream_cost" "$tmp/sc/history.jsonl" 1)
for stage in write check pics all; do
    echo "$out" | grep -Eq "^$stage +[0-9]+\.[0-9]$" || fail "stream_cost: no $stage figure: $out"
done
echo "$out" | grep -Eq '^[1-9][0-9]* records \(sim mode: digested' ||
    fail "stream_cost: no records, or a sim history not digested as its run does: $out"
"$BENCH_BIN/stream_cost" 2>/dev/null && fail "stream_cost without a history succeeded"
"$BENCH_BIN/stream_cost" "$tmp/missing.jsonl" 2>/dev/null && fail "stream_cost on a missing file succeeded"
for bad in "1 nope" "0" "x"; do
    # shellcheck disable=SC2086 # ROUNDS [STAGE] as two words
    "$BENCH_BIN/stream_cost" "$tmp/sc/history.jsonl" $bad 2>"$tmp/sc.err" && fail "stream_cost accepted '$bad'"
    grep -q "expected" "$tmp/sc.err" || fail "stream_cost '$bad': $(cat "$tmp/sc.err")"
done
echo "bench smoke: ok"
