#!/usr/bin/env python3
"""Seed tests/fuzz/corpus/conn for fuzz_conn.c.

One input per recorded transcript (tests/data/transcripts): its client
messages as raw-bytes ops (op 10, at most 255 bytes each) on connection 0,
each followed by "run the loop" (op 11), behind rule-set byte 0 (no
faults); plus a few hand-written op sequences (every auth method, the
closed-portal sequence of issue 11, a pipelined pg_sleep with a cancel, a
never-reading client) under several rule sets. Files are named by the
SHA-1 of their content, as libFuzzer names what it finds.

    python3 tests/fuzz/make_corpus_conn.py
"""
import glob
import hashlib
import os

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "data", "transcripts")
dst = os.path.join(here, "corpus", "conn")
os.makedirs(dst, exist_ok=True)


def write(data):
    with open(os.path.join(dst, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def raw(msg):
    out = b""
    for k in range(0, len(msg), 255):
        part = msg[k:k + 255]
        out += bytes([10, len(part)]) + part
    return out + bytes([11])


for path in sorted(glob.glob(os.path.join(src, "*.hex"))):
    ops = b""
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and parts[0] == "C>S":
            ops += raw(bytes.fromhex(parts[1]))
    if ops:
        write(b"\x00" + ops)

# Hand-written sequences: (op, args...) on connection 0.
STARTUP, PASSWORD, PARSE, BIND, EXECUTE, DESCRIBE, CLOSE, SYNC, QUERY, TERM = range(10)
RUN, ADVANCE, CANCEL, HALFCLOSE, READTOGGLE = 11, 12, 13, 14, 15
seqs = {
    "trust": [STARTUP, 0, RUN, QUERY, 0, QUERY, 1, TERM, 1],
    "password": [STARTUP, 1, RUN, PASSWORD, 2, RUN, QUERY, 0],
    "md5": [STARTUP, 2, RUN, PASSWORD, 1, RUN, QUERY, 9],
    "scram-start": [STARTUP, 3, RUN, PASSWORD, 0],
    "closed-portal": [STARTUP, 0, PARSE, 0, BIND, 0, 0x28, EXECUTE, 0, CLOSE, 0, QUERY, 0, SYNC],
    "rebind-portal": [STARTUP, 0, PARSE, 0, BIND, 0, 0x28, EXECUTE, 0, BIND, 0, 0, QUERY, 0, SYNC],
    "sleep-cancel": [STARTUP, 0, RUN, QUERY, 3, RUN, CANCEL, ADVANCE, ADVANCE, QUERY, 0],
    "ext-sleep": [STARTUP, 0, PARSE, 2, BIND, 0, 0, EXECUTE, 0, SYNC, HALFCLOSE, 0, ADVANCE],
    "no-read": [STARTUP, 0, READTOGGLE] + [QUERY, 1] * 40 + [READTOGGLE, RUN],
    "txn": [STARTUP, 0, QUERY, 4, QUERY, 6, QUERY, 0, QUERY, 15, 0x10, 0, 0x18, 0],
    "xact": [STARTUP, 0x18, RUN, QUERY, 16, QUERY, 17, QUERY, 18, QUERY, 19, QUERY, 0, QUERY, 18,
             QUERY, 5, QUERY, 20, RUN, ADVANCE, QUERY, 21, QUERY, 22],
    "bad-options": [STARTUP, 0x10, RUN, QUERY, 0],
}
for name, ops in seqs.items():
    for rs in (0, 1, 2, 5, 7, 11):
        write(bytes([rs] + ops))
