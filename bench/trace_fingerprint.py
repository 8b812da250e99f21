#!/usr/bin/env python3
"""SHA-256 of the bytes of IMAGE that TRACE (CSV time_s,offset,length,op, or
.zst) reads, in trace order: whether a trace was recorded on this very image
(a rebuilt image puts its files elsewhere, and the trace would then read
other files). Usage: bench/trace_fingerprint.py IMAGE TRACE"""
import hashlib
import subprocess
import sys


def lines(path):
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True, text=True).stdout.splitlines()
    return open(path).read().splitlines()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    image, trace = sys.argv[1:]
    digest = hashlib.sha256()
    with open(image, "rb") as f:
        for line in lines(trace):
            if not line or line.startswith("time"):
                continue
            _, offset, length, _ = line.split(",")
            f.seek(int(offset))
            digest.update(f.read(int(length)))
    print(digest.hexdigest())


if __name__ == "__main__":
    main()
