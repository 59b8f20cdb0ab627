#!/usr/bin/env python3
"""hostile.py - hostile clients against a running `pgfault serve` (driven by
hostile.sh, which starts the server with a control API). Standard library only: raw v3 protocol over loopback sockets.

    hostile.py PID PORT CONTROL_PORT CEILING_MB ERRLOG

The fd-exhaustion scenario lowers the server's RLIMIT_NOFILE with prlimit(1)
for its duration (to 64) and restores it. Each scenario asserts that the server is still up, that another client is
still served (a probe: trust login + SELECT 1), and that the server's
memory high-water mark (VmHWM in /proc/PID/status) stays under CEILING_MB.
Every wait has a deadline; nothing asserts on elapsed time except the
once-a-second bound on accept warnings, which is the requirement itself.
"""
import os
import select
import socket
import struct
import subprocess
import sys
import time

PID, PORT, CPORT, CEILING_MB, ERRLOG = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                         int(sys.argv[4]), sys.argv[5])
DEADLINE = 20.0


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def status_kb(key):
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    fail("server process %d is gone (no %s)" % (PID, key))


def check_alive_and_bounded(what):
    try:
        os.kill(PID, 0)
    except OSError:
        fail("%s: the server died" % what)
    hwm = status_kb("VmHWM") // 1024
    rss = status_kb("VmRSS") // 1024
    if hwm > CEILING_MB:
        fail("%s: server VmHWM %d MB over the ceiling %d MB" % (what, hwm, CEILING_MB))
    print("%s: server up, VmRSS %d MB, VmHWM %d MB (ceiling %d MB)" % (what, rss, hwm, CEILING_MB))


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def startup(user):
    body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0appdb\0\0"
    return struct.pack("!I", len(body) + 4) + body


class Conn:
    def __init__(self, port=None):
        self.s = socket.create_connection(("127.0.0.1", port or PORT), timeout=DEADLINE)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pid = self.key = None

    def send(self, b):
        self.s.sendall(b)

    def read_msg(self):
        while True:
            if len(self.buf) >= 5:
                n = struct.unpack("!I", self.buf[1:5])[0]
                if len(self.buf) >= 1 + n:
                    t, body = self.buf[:1], self.buf[5:1 + n]
                    self.buf = self.buf[1 + n:]
                    if t == b"K":
                        self.pid, self.key = struct.unpack("!ii", body)
                    return t, body
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return None, b""
            self.buf += chunk

    def until(self, t):
        while True:
            got, body = self.read_msg()
            if got is None:
                fail("connection closed while waiting for %r" % t)
            if got == t:
                return body
            if got == b"E" and t != b"E":
                fail("error while waiting for %r: %r" % (t, body))

    def login(self, user=b"trusty"):
        self.send(startup(user))
        self.until(b"Z")
        return self

    def close(self):
        self.s.close()


def probe(what):
    c = Conn().login()
    c.send(msg(b"Q", b"SELECT 1\0"))
    c.until(b"T")
    row = c.until(b"D")
    if row[-1:] != b"1":
        fail("%s: probe got %r" % (what, row))
    c.until(b"Z")
    c.close()
    check_alive_and_bounded(what)


def cancel(pid, key):
    c = socket.create_connection(("127.0.0.1", PORT), timeout=DEADLINE)
    c.sendall(struct.pack("!IIii", 16, 80877102, pid, key))
    c.recv(1)  # EOF: handled
    c.close()


# 1. The closed-portal sequence of issue 11: binary Execute, Close the portal,
#    simple Query before Sync. The Query must answer in text (format 0).
def closed_portal():
    c = Conn().login()
    for i in range(100):
        b = msg(b"P", b"\0SELECT 1\0\0\0")
        b += msg(b"B", b"\0\0" + struct.pack("!hhhh", 0, 0, 1, 1))
        b += msg(b"E", b"\0" + struct.pack("!i", 0))
        b += msg(b"C", b"P\0") if i % 2 == 0 else msg(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
        b += msg(b"Q", b"SELECT 2\0") + msg(b"S")
        c.send(b)
        c.until(b"C")  # the Execute
        rd = c.until(b"T")  # the Query's RowDescription
        if struct.unpack("!h", rd[-2:])[0] != 0:
            fail("closed portal: the simple Query answered with format %r" % rd[-2:])
        c.until(b"Z")
        c.until(b"Z")
    c.close()
    probe("closed-portal sequence x100")


# 2. A client that pipelines queries and never reads: the server must stop
#    reading it (our sends block) instead of buffering without bound.
def never_reading():
    c = Conn()
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.login()
    c.s.setblocking(False)
    batch = msg(b"Q", b"SELECT 1\0") * 1000
    sent, blocked, view = 0, False, memoryview(batch)
    while not blocked and sent < 64 << 20:
        try:
            n = c.s.send(view)
            sent += n
            view = view[n:] if n < len(view) else memoryview(batch)
        except BlockingIOError:
            # does the server take more while we do not read? it must not
            _, w, _ = select.select([], [c.s], [], 2.0)
            blocked = not w
    if not blocked:
        fail("never-reading client: the server read %d MB of pipelined queries" % (sent >> 20))
    print("never-reading client: the server stopped reading after %d kB of queries" % (sent >> 10))
    probe("never-reading client")
    c.close()


# 3. Pre-auth floods: 40 clients announce a 60,000-byte password message
#    (under the 65,535 cap) and send half of it; 40 announce a 10,000-byte
#    startup packet and send half; 40 announce a 100 MB message (closed).
def preauth_floods():
    held = []
    for _ in range(40):
        c = Conn()
        c.send(startup(b"pwu"))
        c.until(b"R")
        c.send(b"p" + struct.pack("!I", 60004) + b"x" * 30000)
        held.append(c)
    for _ in range(40):
        c = Conn()
        c.send(struct.pack("!II", 10000, 196608) + b"u" * 5000)
        held.append(c)
    closed = 0
    for _ in range(40):
        c = Conn()
        c.send(startup(b"pwu"))
        c.until(b"R")
        c.send(b"p" + struct.pack("!I", 100 << 20) + b"x" * 1000)
        t, _ = c.read_msg()
        closed += t is None
        c.close()
    if closed != 40:
        fail("pre-auth: %d of 40 oversized password messages were not closed at once" % (40 - closed))
    probe("pre-auth floods (80 half-sent messages held open, 40 oversized closed)")
    for c in held:
        c.close()


# 4. One Query with 200,000 statements beside a probe: the probe is served
#    and a cancel reaches the big one while it is still running. (The big
#    client reads nothing until the end, with a small receive buffer: the
#    server also parks it on backpressure.)
def huge_query():
    big = Conn()
    big.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    big.login()
    n = 200000
    big.send(msg(b"Q", b"SELECT 1;" * n + b"\0"))
    big.until(b"T")  # it is running (a cancel before this would find it idle)
    probe("huge multi-statement query running")
    cancel(big.pid, big.key)
    done = canceled = 0
    while True:
        t, body = big.read_msg()
        if t is None:
            fail("huge query: connection closed")
        if t == b"C":
            done += 1
        if t == b"E" and b"57014" in body:
            canceled += 1
        if t == b"Z":
            break
    if canceled != 1 or done >= n:
        fail("huge query: %d of %d statements ran, %d canceled: the probe and the cancel waited "
             "for it" % (done, n, canceled))
    print("huge query: the probe was served and the cancel arrived after %d of %d statements"
          % (done, n))
    big.close()


def accept_warnings():
    with open(ERRLOG, errors="replace") as f:
        return sum(1 for line in f if "accept:" in line)


def set_nofile(soft):
    subprocess.run(["prlimit", "--pid", str(PID), "--nofile=%d:" % soft], check=True)


# 5. fd exhaustion: lower the server's RLIMIT_NOFILE to 64 (prlimit) and
#    hold 80 idle connections. The server backs off (accept warnings at most
#    once a second) and serves again once they are gone.
def fd_exhaustion():
    set_nofile(64)
    before = accept_warnings()
    t0 = time.monotonic()
    held = []
    for _ in range(80):
        try:
            held.append(socket.create_connection(("127.0.0.1", PORT), timeout=DEADLINE))
        except OSError:
            break
    # let the server meet EMFILE: wait until a connection beyond the limit
    # is shed (closed at once by the reserve-fd trick) or a warning appears
    deadline = time.monotonic() + DEADLINE
    while accept_warnings() == before and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval, not a timing assertion
    if accept_warnings() == before:
        fail("fd exhaustion: no accept warning in serve's log with 80 connections and 64 fds")
    time.sleep(2.0)  # let it sit at the limit: a spinning loop would log thousands of lines
    warned = accept_warnings() - before
    elapsed = time.monotonic() - t0
    if warned > elapsed + 2:
        fail("fd exhaustion: %d accept warnings in %.1f s (at most one a second)" % (warned, elapsed))
    for s in held:
        s.close()
    set_nofile(1024)
    # the listener comes back after its back-off (at most 1 s); bounded retries
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            probe("fd exhaustion (80 connections, RLIMIT_NOFILE 64; %d warnings in %.1f s)"
                  % (warned, elapsed))
            return
        except (OSError, SystemExit):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# 6. Silent control-API connections: they are closed after the idle timeout
#    (10 s) and the database keeps serving meanwhile.
def silent_control():
    held = []
    for _ in range(30):
        held.append(socket.create_connection(("127.0.0.1", CPORT), timeout=DEADLINE))
    probe("30 silent control connections open")
    deadline = time.monotonic() + 30
    for s in held:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if s.recv(1) != b"":
                fail("silent control connection: got data")
        except socket.timeout:
            fail("silent control connection still open after 30 s (idle timeout 10 s)")
        s.close()
    print("silent control connections: all closed by the server")
    probe("after silent control connections")


for name, fn in [("closed_portal", closed_portal), ("never_reading", never_reading),
                 ("preauth_floods", preauth_floods), ("huge_query", huge_query),
                 ("silent_control", silent_control), ("fd_exhaustion", fd_exhaustion)]:
    print("--", name)
    fn()
print("PASS")
