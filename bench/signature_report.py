#!/usr/bin/env python3
"""Markdown table of bench/signature_eval.sh's JSON lines.
Usage: signature_report.py RAW.jsonl REPLAYED_TRACE CHUNK BANDWIDTH SHIPPED_NOTE TAUGHT_NOTE"""
import json
import sys

raw, trace, chunk, bandwidth, shipped_note, taught_note = sys.argv[1:7]
rows = [json.loads(line) for line in open(raw) if line.strip()]
by = {(r["rtt_ms"], r["system"], r["mode"]): r for r in rows}
order = ["local", "none", "shipped", "taught", "own"]
unique = set()
for line in open(trace):
    if line[0].isdigit():
        _, off, length, _ = line.strip().split(",")
        off, length = int(off), int(length)
        unique.update(range(off >> 16, (off + length - 1 >> 16) + 1))
print(f"Replayed: the last traced start of image B ({len(unique) * 64 / 1024:.1f} MiB of 64 KiB blocks); chunk {chunk}, "
      f"link {bandwidth}B/s shared FIFO, emulated RTT per request. VM B has no history except in *own*.\n")
print(f"* shipped profile: {shipped_note}\n* taught profile: {taught_note}\n")
print("*Coverage*: chunks the replay read for the first time that were already in the cache, of all such chunks\n"
      "(`prefetch_coverage`, counted by the prefetch engine, so not for *none*); the whole start is inside its\n"
      "first 60 s. *Precision*: prefetched bytes the replay\n"
      "then read, of all prefetched. *Time in reads*: the sum of the timed replay's read latencies (how long the VM\n"
      "waited for its disk). *Fast*: the same reads back to back.\n")
print("| RTT ms | system | coverage (timed) | precision | prefetched MiB | origin MiB | time in reads s | × local | "
      "fast replay s | × local | p99 us (timed) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (rtt, system, mode), r in sorted(by.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
    if mode != "timed":
        continue
    fast = by.get((rtt, system, "fast"), {})
    local = by.get((rtt, "local", "timed"))
    local_fast = by.get((rtt, "local", "fast"))
    ratio = r["read_time_s"] / local["read_time_s"] if local else float("nan")
    fast_ratio = fast["total_s"] / local_fast["total_s"] if fast and local_fast else float("nan")
    done = r.get("prefetch_done_bytes", 0)
    used = r.get("prefetch_used_bytes", 0)
    prec = f"{used / done:.2f}" if done else "-"
    cov = f"{float(r['prefetch_coverage']):.2f}" if system not in ("local", "none") else "-"
    origin = f"{r['bytes_fetched'] / 2**20:.1f}" if "bytes_fetched" in r else "-"
    print(f"| {rtt:g} | {system} | {cov} | {prec} | {done / 2**20:.1f} | {origin} | {r['read_time_s']:.2f} | "
          f"{ratio:.2f} | {fast.get('total_s', float('nan')):.2f} | {fast_ratio:.2f} | {r['latency_p99_us']:.0f} |")
bad = [r for r in rows if r.get("mismatches", 0)]
if bad:
    print(f"\n**{len(bad)} replays read bytes that differ from the image**")
    sys.exit(1)
