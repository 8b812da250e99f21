#!/usr/bin/env python3
"""Writes the side-by-side benchmark's workloads (issue 7) as block traces.

    bench/make_workloads.py OUTDIR (--image-size SIZE | --image FILE)
                            [--cut 30] [--seed 7] [--traces bench/traces]

Every workload is a CSV trace `time_s,offset,length,op` (header included), the
format `affinity-trace-replay --trace` reads, over the 2 GiB VM image the
traces were recorded on (bench/traces/README.md, root.raw):

  seq.csv      512 MiB read sequentially from offset 0 in 1 MiB reads, all at
               time 0 (back to back): streaming throughput.
  random.csv   2,000 4 KiB reads at 4 KiB-aligned offsets drawn without
               replacement, uniformly over the whole image (SIZE rounded down
               to 4 KiB), all at time 0: random IOPS and per-request latency.
               Python's random.Random(SEED).sample(range(SIZE // 4096), 2000),
               SEED = 7 unless --seed: the same offsets on every machine.
  boot.csv     bench/traces/boot-4.csv.zst decompressed: a Debian guest booting.
  db.csv       bench/traces/db-4.csv.zst decompressed: boot, then 60 s of
               SQLite queries and inserts.
  cutover.csv  db-4 from CUT seconds on (--cut, default 30), times shifted to
               start at 0: the reads after a live migration's cut-over, when
               the VM arrives with its working set elsewhere. The same records
               as `affinity-trace-replay --trace db.csv --from CUT`.

workloads.json: {name: {reads, bytes, unique_bytes, ...}} where bytes is what
the reads return from an image of SIZE bytes (a read past the end is short,
as the replayer counts it), unique_bytes the distinct bytes of the image they
touch (the least any system must fetch from the origin), unique_4k_bytes the
same in whole 4 KiB blocks, requested_bytes the sum of the trace's lengths,
duration_s the last read's time.

SIZE takes K/M/G/T suffixes (powers of 1024) or a byte count.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys

MIB = 1 << 20
SEQ_BYTES = 512 * MIB
SEQ_READ = 1 * MIB
RANDOM_READS = 2000
RANDOM_READ = 4096
DEFAULT_SEED = 7
HEADER = "time_s,offset,length,op\n"


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 2147483648)")
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " "))


def read_zst(path):
    """The text of a zstd-compressed trace, and its records (time_s text, offset, length, op)."""
    try:
        text = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("make_workloads.py: zstd not found (apt-get install zstd)")
    except subprocess.CalledProcessError as e:
        sys.exit(f"make_workloads.py: zstd -dc {path}: {e.stderr.strip()}")
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if n == 1 and line.startswith("time_s"):
            continue
        t, off, length, op = line.split(",")
        records.append((t, int(off), int(length), op))
    return text, records


def stats(records, size):
    """reads, bytes (clipped at the image's end), unique bytes and more, of the reads."""
    reads = [(off, length) for _, off, length, op in records if op == "R"]
    got = sum(max(0, min(off + length, size) - off) for off, length in reads)
    # Union of the byte ranges [off, end) clipped to the image.
    spans = sorted((off, min(off + length, size)) for off, length in reads if off < size)
    unique, cur_start, cur_end = 0, None, None
    for start, end in spans:
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                unique += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        unique += cur_end - cur_start
    blocks = set()
    for start, end in spans:
        blocks.update(range(start // 4096, (end + 4095) // 4096))
    return {
        "reads": len(reads),
        "bytes": got,
        "unique_bytes": unique,
        "unique_4k_bytes": min(len(blocks) * 4096, size),
        "requested_bytes": sum(length for _, length in reads),
        "duration_s": max((float(t) for t, *_ in records), default=0.0),
    }


def write_csv(path, records):
    with open(path, "w") as f:
        f.write(HEADER)
        f.writelines(f"{t},{off},{length},{op}\n" for t, off, length, op in records)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the top of this file for what each workload is.")
    ap.add_argument("outdir")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--image-size", type=parse_size, help="image size (bytes, or 2G)")
    src.add_argument("--image", help="take the size from this file (e.g. root.raw)")
    ap.add_argument("--cut", type=float, default=30.0, help="cut-over time in db-4, seconds (default 30)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random.csv seed (default {DEFAULT_SEED})")
    ap.add_argument("--traces", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "traces"),
                    help="directory of boot-4.csv.zst and db-4.csv.zst (default: bench/traces)")
    a = ap.parse_args()
    size = a.image_size if a.image is None else os.path.getsize(a.image)
    if size < SEQ_BYTES:
        ap.error(f"the image ({size} bytes) is smaller than the sequential workload (512 MiB)")
    blocks = size // RANDOM_READ
    if blocks < RANDOM_READS:
        ap.error(f"the image has fewer than {RANDOM_READS} 4 KiB blocks")
    os.makedirs(a.outdir, exist_ok=True)

    workloads = {}
    seq = [("0", off, SEQ_READ, "R") for off in range(0, SEQ_BYTES, SEQ_READ)]
    random_reads = [("0", b * RANDOM_READ, RANDOM_READ, "R")
                    for b in random.Random(a.seed).sample(range(blocks), RANDOM_READS)]
    boot_text, boot = read_zst(os.path.join(a.traces, "boot-4.csv.zst"))
    db_text, db = read_zst(os.path.join(a.traces, "db-4.csv.zst"))
    # Same rule as the replayer's --from: keep time_s >= CUT, subtract CUT.
    cut = [(f"{float(t) - a.cut:.6f}", off, length, op) for t, off, length, op in db if float(t) >= a.cut]
    if not cut:
        ap.error(f"db-4 has no reads at or after {a.cut} s")
    for name, records, text, desc, extra in [
        ("seq", seq, None, "sequential 512 MiB in 1 MiB reads from offset 0, back to back", {}),
        ("random", random_reads, None,
         f"{RANDOM_READS} random 4 KiB-aligned 4 KiB reads over the image, seed {a.seed}", {"seed": a.seed}),
        ("boot", boot, boot_text, "bench/traces/boot-4: a Debian 12 guest booting", {}),
        ("db", db, db_text, "bench/traces/db-4: boot, then 60 s of SQLite queries and inserts", {}),
        ("cutover", cut, None,
         f"db-4 from {a.cut:g} s on, times shifted to start at 0 (live-migration cut-over)", {"cut_s": a.cut}),
    ]:
        path = os.path.join(a.outdir, f"{name}.csv")
        if text is None:
            write_csv(path, records)
        else:  # the recorded trace byte for byte
            with open(path, "w") as f:
                f.write(text)
        workloads[name] = dict(stats(records, size), description=desc, image_size=size, **extra)
    with open(os.path.join(a.outdir, "workloads.json"), "w") as f:
        json.dump(workloads, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, w in workloads.items():
        print(f"{name:8} {w['reads']:6} reads {w['bytes'] / MIB:8.1f} MiB, unique {w['unique_bytes'] / MIB:8.1f} MiB")


if __name__ == "__main__":
    main()
