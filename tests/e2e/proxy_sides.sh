#!/usr/bin/env bash
# proxy_sides.sh - what issue 16 says the proxy does to each side, checked
# against a real PostgreSQL 15 (scripts/pg-reference) at the byte and backend
# level, where comparing psql's output with the fake's (proxy_real.sh) cannot
# see it:
#  - a FATAL injected at a query closes BOTH sides as PostgreSQL would: the
#    client's connection ends, and the real backend that served it is gone
#    from pg_stat_activity; an ERROR at a query keeps both (same backend pid
#    answers the next query);
#  - `reset` with `side: upstream`: the real backend sees its client vanish
#    (PostgreSQL logs "could not receive data from client: Connection reset by
#    peer") and the client sees the server close;
#  - truncation inside a chosen message: a raw client receives exactly the
#    first 3 bytes of the real server's DataRow, then EOF;
#  - drip: the client receives the very bytes the real server sends (equal to
#    a direct connection's), in slices, no sooner than the pauses allow (a
#    lower bound only).
# Bounded: every client has a timeout; the proxy is killed by PID in the EXIT
# trap, the reference server stopped; loopback and a temp dir only.
set -euo pipefail
: "${PGFAULT:?PGFAULT must name the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must name the source tree}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
PY=/usr/bin/python3
$PY -c 'import psycopg2' 2>/dev/null || fail "python3-psycopg2 is not installed (scripts/install-deps)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-proxy-sides.XXXXXX")
chmod 0711 "$TMP" # the reference server runs as the postgres user when we are root
REF=
PROXY_PID=
cleanup() {
    if [ -n "$PROXY_PID" ]; then kill -9 "$PROXY_PID" 2>/dev/null || true; fi
    if [ -n "$REF" ]; then "$PGF_SRC/scripts/pg-reference" stop "$TMP/ref" >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
"$PGF_SRC/scripts/pg-reference" start "$TMP/ref" >"$TMP/ref.out" || fail "cannot start the reference PostgreSQL"
REF=1
REF_PORT=$(awk '$1 == "port" {print $2}' "$TMP/ref.out")

cat >"$TMP/rules.yaml" <<'EOF'
rules:
  - {name: fatal, phase: query, match: {application_name: px-fatal, query: "SELECT 2"}, action: error, preset: admin-shutdown}
  - {name: error, phase: query, match: {application_name: px-error, query: "SELECT 2"}, action: error, severity: ERROR, sqlstate: "40001", message: could not serialize}
  - {name: up-reset, phase: query, match: {application_name: px-up-reset, query: "SELECT 2"}, action: reset, side: upstream}
  - {name: trunc, phase: data-row, match: {application_name: px-trunc}, action: truncate, bytes: 3}
  - {name: drip, phase: row-description, match: {application_name: px-drip}, action: drip, slice: 4, ms: 10}
EOF
"$PGFAULT" proxy --listen 127.0.0.1:0 --upstream "127.0.0.1:$REF_PORT" --faults "$TMP/rules.yaml" \
    >"$TMP/proxy.out" 2>"$TMP/proxy.err" &
PROXY_PID=$!
for _ in $(seq 200); do
    grep -q '^upstream ' "$TMP/proxy.out" 2>/dev/null && break
    kill -0 "$PROXY_PID" 2>/dev/null || fail "pgfault proxy exited early: $(cat "$TMP/proxy.err")"
    sleep 0.05 # polling while it starts, not a timing assertion
done
PX_PORT=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/proxy.out")
[ -n "$PX_PORT" ] || fail "no 'listening tcp' line from the proxy: $(cat "$TMP/proxy.out")"

timeout 60 $PY - "$PX_PORT" "$REF_PORT" "$TMP/ref/server.log" <<'EOF' || fail "see above"
import socket, struct, sys, time
import psycopg2

px, ref, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
admin = psycopg2.connect(host="127.0.0.1", port=ref, user="postgres", dbname="postgres",
                         connect_timeout=10)
admin.autocommit = True

def backend_alive(pid):
    with admin.cursor() as c:
        c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return c.fetchone()[0] == 1

def until_gone(pid, what):
    # bounded poll: the backend ends once it reads the proxy's Terminate/EOF
    deadline = time.monotonic() + 10
    while backend_alive(pid):
        assert time.monotonic() < deadline, f"{what}: backend {pid} still alive after 10 s"
        time.sleep(0.05)

def via_proxy(app):
    c = psycopg2.connect(host="127.0.0.1", port=px, user="pgf_scram", password="pgf_scram_pw",
                         dbname="postgres", application_name=app, connect_timeout=10)
    c.autocommit = True
    return c

# 1. FATAL at a query: both sides close.
c = via_proxy("px-fatal")
cur = c.cursor()
cur.execute("SELECT pg_backend_pid()")
pid = cur.fetchone()[0]
assert backend_alive(pid)
try:
    cur.execute("SELECT 2")
    raise AssertionError("FATAL: the query succeeded")
except psycopg2.OperationalError:
    pass  # psycopg2 reports libpq's "server closed the connection" (psql shows the FATAL text)
assert c.closed != 0, "FATAL: the client's connection is still open"
until_gone(pid, "FATAL")
print(f"FATAL at query: client closed, backend {pid} gone")

# ... an ERROR keeps both: the same backend answers the next query.
c = via_proxy("px-error")
cur = c.cursor()
cur.execute("SELECT pg_backend_pid()")
pid = cur.fetchone()[0]
try:
    cur.execute("SELECT 2")
    raise AssertionError("ERROR: the query succeeded")
except psycopg2.errors.SerializationFailure:
    pass
cur.execute("SELECT pg_backend_pid()")
assert cur.fetchone()[0] == pid and c.closed == 0 and backend_alive(pid)
c.close()
until_gone(pid, "ERROR then close")
print(f"ERROR at query: session and backend {pid} kept")

# 2. reset side: upstream: the backend sees its client vanish, the client the server close.
c = via_proxy("px-up-reset")
cur = c.cursor()
cur.execute("SELECT pg_backend_pid()")
pid = cur.fetchone()[0]
try:
    cur.execute("SELECT 2")
    raise AssertionError("up-reset: the query succeeded")
except psycopg2.OperationalError as e:
    assert "server closed the connection unexpectedly" in str(e), str(e)
until_gone(pid, "up-reset")
deadline = time.monotonic() + 10
want = "could not receive data from client: Connection reset by peer"
while want not in open(log, errors="replace").read():
    assert time.monotonic() < deadline, "up-reset: PostgreSQL did not log the reset of its client"
    time.sleep(0.05)
print(f"reset side upstream: backend {pid} saw '{want}'")

# 3./4. raw clients (trust role, no password): the bytes of one simple query.
def msgs(b):
    out, i = [], 0
    while i + 5 <= len(b):
        n = struct.unpack("!I", b[i + 1:i + 5])[0]
        if i + 1 + n > len(b):
            break
        out.append(b[i:i + 1 + n])
        i += 1 + n
    return out, b[i:]

def raw_query(port, app, sql):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = b"".join(k + b"\0" + v + b"\0" for k, v in
                    [(b"user", b"pgf_trust"), (b"database", b"postgres"),
                     (b"application_name", app)]) + b"\0"
    s.sendall(struct.pack("!II", 8 + len(body), 196608) + body)
    buf = b""
    while not any(m[:1] == b"Z" for m in msgs(buf)[0]):
        d = s.recv(65536)
        assert d, "closed during startup"
        buf += d
    q = sql.encode() + b"\0"
    s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
    t0, chunks = time.monotonic(), []
    while True:
        d = s.recv(65536)
        if not d:
            break
        chunks.append(d)
        if msgs(b"".join(chunks))[0][-1:] and msgs(b"".join(chunks))[0][-1][:1] == b"Z":
            break
    s.close()
    return b"".join(chunks), time.monotonic() - t0, len(chunks)

direct, _, _ = raw_query(ref, b"direct", "SELECT 'hello, proxy' AS greeting")
dm, rest = msgs(direct)
assert [m[:1] for m in dm] == [b"T", b"D", b"C", b"Z"] and rest == b"", dm
got, _, _ = raw_query(px, b"px-trunc", "SELECT 'hello, proxy' AS greeting")
assert got == dm[0] + dm[1][:3], (got, dm)
print(f"truncate at data-row: RowDescription whole, then {dm[1][:3]!r} of the {len(dm[1])}-byte DataRow, then EOF")

got, took, nchunks = raw_query(px, b"px-drip", "SELECT 'hello, proxy' AS greeting")
assert got == direct, (got, direct)
slices = (len(direct) + 3) // 4
assert took >= (slices - 1) * 0.010 * 0.9, (took, slices)
print(f"drip: the real server's {len(direct)} bytes unchanged, {nchunks} reads, {took * 1000:.0f} ms "
      f"(>= {(slices - 1) * 10} ms of pauses)")
EOF
kill -TERM "$PROXY_PID"
rc=0
wait "$PROXY_PID" || rc=$?
PROXY_PID=
[ "$rc" = 0 ] || fail "the proxy exited $rc on SIGTERM: $(cat "$TMP/proxy.err")"
echo "proxy_sides: all passed"
