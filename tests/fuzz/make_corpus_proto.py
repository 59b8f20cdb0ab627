#!/usr/bin/env python3
"""Seed tests/fuzz/corpus/proto from the recorded transcripts.

One input per transcript (its whole client side, as one connection sends
it) and one per distinct client message, each behind the mode byte that
fuzz_proto.c reads (bit 0: startup phase; bits 1-2: 0 password, 1 SCRAM,
3 every parser). Files are named by the SHA-1 of their content, as
libFuzzer names what it finds, so re-running only adds what is new.

    python3 tests/fuzz/make_corpus_proto.py
"""
import glob
import hashlib
import os

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "data", "transcripts")
dst = os.path.join(here, "corpus", "proto")
os.makedirs(dst, exist_ok=True)


def write(data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(dst, name), "wb") as f:
        f.write(data)


for path in sorted(glob.glob(os.path.join(src, "*.hex"))):
    client = []
    scram = False
    for line in open(path):
        parts = line.split()
        if len(parts) != 2:
            continue
        data = bytes.fromhex(parts[1])
        if parts[0] == "S>C" and data[:1] == b"R" and len(data) >= 9:
            scram = scram or int.from_bytes(data[5:9], "big") == 10
        if parts[0] == "C>S":
            client.append(data)
    if not client:
        continue
    write(bytes([1 | (2 if scram else 0)]) + b"".join(client))
    for m in client:
        write(bytes([(1 if m[0] == 0 else 0) | 6]) + m)
