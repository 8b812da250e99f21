#!/usr/bin/env python3
"""Bytes a trace makes a cache fetch, by chunk size (issue 4, "chunk size matters").

For each trace (CSV time_s,offset,length,op; .zst is decompressed with the
zstd tool): the unique bytes read at 4 KiB granularity, and the bytes fetched
if every read pulls whole chunks of 16 KiB ... 1 MiB, as a ratio to the
4 KiB-unique bytes. Prints a Markdown table.

Usage: bench/chunk_sizes.py TRACE...
"""
import subprocess
import sys

SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]


def lines(path):
    if path.endswith(".zst"):
        out = subprocess.run(["zstd", "-q", "-d", "-c", path], check=True, capture_output=True, text=True).stdout
        return out.splitlines()
    with open(path) as f:
        return f.read().splitlines()


def main():
    print("| trace | reads | 4 KiB-unique MiB | " + " | ".join(f"{s >> 10} KiB" for s in SIZES[1:]) + " |")
    print("|---|---|---|" + "---|" * (len(SIZES) - 1))
    totals = [0] * len(SIZES)
    for path in sys.argv[1:]:
        chunks = [set() for _ in SIZES]
        reads = 0
        for line in lines(path):
            f = line.split(",")
            if len(f) != 4 or not f[1].strip().isdigit() or f[3].strip().upper() != "R":
                continue
            off, length = int(f[1]), int(f[2])
            reads += 1
            for i, s in enumerate(SIZES):
                chunks[i].update(range(off // s, (off + length - 1) // s + 1))
        sizes = [len(c) * s for c, s in zip(chunks, SIZES)]
        totals = [t + x for t, x in zip(totals, sizes)]
        base = sizes[0] or 1
        print(f"| {path.split('/')[-1]} | {reads} | {sizes[0] / 2**20:.1f} | "
              + " | ".join(f"{x / base:.2f}x" for x in sizes[1:]) + " |")
    base = totals[0] or 1
    print("| **all** | | " + f"{totals[0] / 2**20:.1f} | " + " | ".join(f"**{x / base:.2f}x**" for x in totals[1:]) + " |")


if __name__ == "__main__":
    main()
