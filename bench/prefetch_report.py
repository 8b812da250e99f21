#!/usr/bin/env python3
"""Markdown table of bench/prefetch_eval.sh's JSON lines (stdin file argv[1])."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
chunk, bandwidth, cut, lead = sys.argv[2:6]
by = {(r["scenario"], r["rtt_ms"], r["system"], r["mode"]): r for r in rows}
names = {"boot": "restart (boot)", "db": f"live migration (db, cut-over at {cut} s, {lead} s lead)"}
print(f"Chunk size {chunk}, link {bandwidth}B/s shared FIFO, emulated RTT per request.\n")
print("Timed: reads issued at their recorded times; *time in reads* is the sum of every read's latency, i.e. how long\n"
      "the VM waited for its disk. Fast: the same reads back to back, as fast as possible (prefetch has no head start).\n")
print("| scenario | RTT ms | system | time in reads s (timed) | × local | fast replay s | × local | p50 us | p99 us "
      "| hit ratio | prefetched MiB | precision | coverage | late misses |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (scenario, rtt, system, mode), r in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                               ["local", "cold", "last-trace", "engine"].index(kv[0][2]))):
    if mode != "timed":
        continue
    fast = by.get((scenario, rtt, system, "fast"), {})
    local = by.get((scenario, rtt, "local", "timed"))
    local_fast = by.get((scenario, rtt, "local", "fast"))
    ratio = r["read_time_s"] / local["read_time_s"] if local else float("nan")
    fast_ratio = fast["total_s"] / local_fast["total_s"] if fast and local_fast else float("nan")
    done = r.get("prefetch_done_bytes", 0)
    used = r.get("prefetch_used_bytes", 0)
    prec = f"{used / done:.2f}" if done else "-"
    cov = f"{float(r['prefetch_coverage']):.2f}" if system in ("last-trace", "engine") else "-"
    hit = f"{r['hit_ratio']:.3f}" if "hit_ratio" in r else "-"
    print(f"| {names[scenario]} | {rtt:g} | {system} | {r['read_time_s']:.2f} | {ratio:.2f} | "
          f"{fast.get('total_s', float('nan')):.2f} | {fast_ratio:.2f} | {r['latency_p50_us']:.0f} | {r['latency_p99_us']:.0f} | "
          f"{hit} | {done / 2**20:.1f} | {prec} | {cov} | "
          f"{r.get('demand_misses_while_queued', '-')} |")
bad = [r for r in rows if r.get("mismatches", 0)]
if bad:
    print(f"\n**{len(bad)} replays read bytes that differ from the image**")
    sys.exit(1)
