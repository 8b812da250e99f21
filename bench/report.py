#!/usr/bin/env python3
"""The side-by-side benchmark's report (issue 7): Markdown tables, goals, plots.

    bench/report.py RESULTS.jsonl OUTDIR [--workloads workloads.json] [--time-field seconds]

RESULTS.jsonl: one JSON object a line, one per run of one (system, workload,
mode, delay_ms), with keys
  system, workload, mode ("cold"|"warm"), delay_ms,
  seconds, reads, bytes, throughput_mib_s, p50_us, p99_us, mismatches,
  origin_requests, origin_bytes, unique_bytes
(the replayer's --json gives seconds..mismatches; unique_bytes is in
make_workloads.py's workloads.json, which --workloads reads for rows that lack
it). Any key but the first four may be missing or null: its cell shows "—".
A cell measured more than once shows the run with the median value.

Writes OUTDIR/results.md (a table per workload, the goals with pass/fail) and
OUTDIR/img/<workload>.{dat,gp,png} (a bar chart of the time per system, cold
and warm, at each delay). The PNGs need gnuplot (Debian: gnuplot-nox); without
it the .dat and .gp files are written, a note says so, and nothing else fails.

"local" is the image file itself, "curl" a plain HTTP download from the
origin; every system whose name starts with "affinityfs" is ours; the others
are the peers. Exit: 0; 1 if a row reports mismatches (the report is still
written, with the rows listed first); 2 on unreadable input.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

DASH = "—"
MIB = 1 << 20
WORKLOAD_ORDER = ["seq", "random", "boot", "db", "cutover", "boot-timed", "cutover-timed"]
TRACES = ["boot", "db", "cutover"]  # replays of recorded VM traces
MODES = ["cold", "warm"]
GOAL_SYSTEM = "affinityfs-engine"
NO_PROFILE_SYSTEM = "affinityfs-none"


def is_ours(system):
    return system.startswith("affinityfs")


def is_peer(system):
    return not is_ours(system) and system not in ("local", "curl")


def num(v):
    """v as a finite float, or None (missing, null, not a number)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Metric:
    """What a workload's main column shows; higher_better decides 'best'."""

    def __init__(self, label, unit, higher_better, fn):
        self.label, self.unit, self.higher_better, self.fn = label, unit, higher_better, fn

    def __call__(self, row):
        return None if row is None else self.fn(row)


def metric_for(workload, time_field):
    if workload == "seq":
        return Metric("MiB/s", "MiB/s", True, lambda r: num(r.get("throughput_mib_s")))
    if workload == "random":
        def iops(r):
            reads, secs = num(r.get("reads")), num(r.get(time_field))
            return reads / secs if reads is not None and secs else None
        return Metric("IOPS", "IOPS", True, iops)
    return Metric("time s", "s", False, lambda r: num(r.get(time_field)))


def load(path):
    rows = []
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"report.py: {e}")
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                print(f"report.py: {path}:{n}: not JSON ({e}); skipped", file=sys.stderr)
                continue
            if not isinstance(r, dict) or any(r.get(k) is None for k in ("system", "workload", "mode", "delay_ms")):
                print(f"report.py: {path}:{n}: needs system, workload, mode, delay_ms; skipped", file=sys.stderr)
                continue
            if num(r["delay_ms"]) is None:
                print(f"report.py: {path}:{n}: delay_ms is not a number; skipped", file=sys.stderr)
                continue
            r["delay_ms"] = num(r["delay_ms"])
            r["_line"] = n
            rows.append(r)
    return rows


class Results:
    def __init__(self, rows, time_field):
        self.time_field = time_field
        groups = {}
        for r in rows:
            groups.setdefault((r["workload"], r["system"], r["mode"], r["delay_ms"]), []).append(r)
        self.repeats = {k: len(v) for k, v in groups.items() if len(v) > 1}
        self.cells = {}
        for key, rs in groups.items():
            m = metric_for(key[0], time_field)
            measured = sorted((r for r in rs if m(r) is not None), key=m)
            # The median run (lower middle), so every column of a cell is from one run.
            self.cells[key] = measured[(len(measured) - 1) // 2] if measured else rs[0]
        self.workloads = sorted({k[0] for k in self.cells},
                                key=lambda w: (WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99, w))
        self.systems = sorted({k[1] for k in self.cells},
                              key=lambda s: (0 if s == "local" else 1 if s == "curl" else 2 if is_ours(s) else 3, s))
        self.delays = sorted({k[3] for k in self.cells})
        self.modes = sorted({k[2] for k in self.cells}, key=lambda m: (MODES.index(m) if m in MODES else 9, m))

    def get(self, workload, system, mode, delay):
        return self.cells.get((workload, system, mode, delay))

    def value(self, workload, system, mode, delay):
        return metric_for(workload, self.time_field)(self.get(workload, system, mode, delay))

    def local(self, workload, mode, delay):
        """(local row, the delay it was measured at): the same delay, else the
        nearest one (a local file has no network delay)."""
        for d in sorted(self.delays, key=lambda d: (d != delay, abs(d - delay), d)):
            r = self.get(workload, "local", mode, d)
            if self.value(workload, "local", mode, d) is not None:
                return r, d
        return None, None

    def best_peer(self, workload, mode, delay):
        """(system, value) of the best peer for this cell, or (None, None)."""
        m = metric_for(workload, self.time_field)
        # A peer that returned wrong bytes in this cell is not a reference.
        vals = [(s, self.value(workload, s, mode, delay)) for s in self.systems
                if is_peer(s) and not num((self.get(workload, s, mode, delay) or {}).get("mismatches"))]
        vals = [(s, v) for s, v in vals if v is not None]
        if not vals:
            return None, None
        return (max if m.higher_better else min)(vals, key=lambda sv: sv[1])


def fmt(v, digits=2):
    if v is None:
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def fmt_ms(r):
    p50, p99 = num(r.get("p50_us")), num(r.get("p99_us"))
    if p50 is None and p99 is None:
        return DASH
    return f"{fmt(None if p50 is None else p50 / 1000, 3)} / {fmt(None if p99 is None else p99 / 1000, 3)}"


def ratio(a, b):
    return a / b if a is not None and b else None


def delay_label(d):
    return f"{d:g} ms"


def table(res, workload, unique_fallback):
    m = metric_for(workload, res.time_field)
    cols = [(d, mode) for d in res.delays for mode in res.modes
            if any(res.get(workload, s, mode, d) for s in res.systems)]
    systems = [s for s in res.systems if any(res.get(workload, s, mo, d) for d, mo in cols)]
    head = ["system"]
    for d, mode in cols:
        p = f"{delay_label(d)} {mode}:"
        head += [f"{p} {m.label}", f"{p} p50 / p99 ms", f"{p} origin req", f"{p} origin MiB (× unique)",
                 f"{p} × local", f"{p} × best peer"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in systems:
        line = [s]
        for d, mode in cols:
            r = res.get(workload, s, mode, d)
            if r is None:
                line += [DASH] * 6
                continue
            v = m(r)
            cell = fmt(v)
            if r.get("error"):
                cell = f"✗ {r['error']}"
            if num(r.get("mismatches")):
                cell += f" ⚠ {int(num(r['mismatches']))} mismatches"
            if (workload, s, mode, d) in res.repeats:
                cell += f" (median of {res.repeats[(workload, s, mode, d)]})"
            reqs = num(r.get("origin_requests"))
            ob = num(r.get("origin_bytes"))
            uniq = num(r.get("unique_bytes"))
            if uniq is None:
                uniq = unique_fallback.get(workload)
            over = ratio(ob, uniq)
            origin = DASH if ob is None else fmt(ob / MIB, 1) + (f" ({over:.2f}×)" if over is not None else "")
            local_row, _ = res.local(workload, mode, d)
            _, peer_v = res.best_peer(workload, mode, d)
            line += [cell, fmt_ms(r), DASH if reqs is None else f"{reqs:,.0f}", origin,
                     fmt(ratio(v, m(local_row))), fmt(ratio(v, peer_v))]
        out.append("| " + " | ".join(line) + " |")
    notes = []
    for d, mode in cols:
        peer, v = res.best_peer(workload, mode, d)
        _, ld = res.local(workload, mode, d)
        note = f"{delay_label(d)} {mode}: best peer " + (f"**{peer}** ({fmt(v)} {m.unit})" if peer else DASH)
        if ld is not None and ld != d:
            note += f"; local measured at {delay_label(ld)}"
        notes.append(note)
    return out, notes


class Goals:
    def __init__(self):
        self.lines, self.counts = [], {}

    def add(self, goal, workload, system, delay, mode, value, need, ok, detail=""):
        result = "not measured" if ok is None else ("pass" if ok else "**FAIL**")
        self.lines.append(f"| {goal} | {workload} | {system} | {delay_label(delay)} | {mode} | "
                          f"{DASH if value is None else f'{value:.2f}'} | {need} | {result} | {detail} |")
        self.counts[result] = self.counts.get(result, 0) + 1


def goals(res, unique_fallback):
    g = Goals()
    ours = [s for s in res.systems if is_ours(s)] or [f"affinityfs{DASH}"]

    # (a) the engine on boot and db at 2 ms, cold: near local, far ahead of the peers.
    # The timed replays (recorded timing; time = the VM's wait for reads) count too.
    for w in ("boot", "db", "boot-timed", "cutover-timed"):
        if w.endswith("-timed") and not any(res.get(w, s, "cold", 2.0) for s in res.systems):
            continue
        v = res.value(w, GOAL_SYSTEM, "cold", 2.0)
        local_row, ld = res.local(w, "cold", 2.0)
        lv = res.value(w, "local", "cold", ld) if ld is not None else None
        r = ratio(v, lv)
        g.add("(a) time ≤ 1.10 × local", w, GOAL_SYSTEM, 2.0, "cold", r, "≤ 1.10",
              None if r is None else r <= 1.10, f"local {fmt(lv)} s" + (f" at {delay_label(ld)}" if ld not in (None, 2.0) else ""))
        peer, pv = res.best_peer(w, "cold", 2.0)
        r = ratio(pv, v)
        g.add("(a) ≥ 3× faster than best peer", w, GOAL_SYSTEM, 2.0, "cold", r, "≥ 3.00",
              None if r is None else r >= 3.0, f"best peer {peer or DASH} {fmt(pv)} s")

    # (b) without a profile, no slower than the best peer, on every trace and delay.
    for w in TRACES:
        for d in [d for d in res.delays if any(res.get(w, s, "cold", d) for s in res.systems)] or [2.0]:
            v = res.value(w, NO_PROFILE_SYSTEM, "cold", d)
            peer, pv = res.best_peer(w, "cold", d)
            r = ratio(v, pv)
            g.add("(b) time ≤ best peer", w, NO_PROFILE_SYSTEM, d, "cold", r, "≤ 1.00",
                  None if r is None else r <= 1.0, f"best peer {peer or DASH} {fmt(pv)} s")

    # (c) warm: the system's own cache against the local file (page cache dropped
    # for both); cold sequential against a plain download.
    for w, need in (("seq", 0.9), ("random", 0.5)):
        for s in ours:
            for d in [d for d in res.delays if res.get(w, s, "warm", d)] or [0.0]:
                v = res.value(w, s, "warm", d)
                _, ld = res.local(w, "warm", d)
                lv = res.value(w, "local", "warm", ld) if ld is not None else None
                r = ratio(v, lv)
                g.add(f"(c) warm {w} ≥ {need} × local warm", w, s, d, "warm", r, f"≥ {need:.2f}",
                      None if r is None else r >= need, f"local {fmt(lv)} {metric_for(w, res.time_field).unit}")
    for s in ours:
        v, cv = res.value("seq", s, "cold", 0.0), res.value("seq", "curl", "cold", 0.0)
        r = ratio(v, cv)
        g.add("(c) cold seq ≥ 0.9 × curl", "seq", s, 0.0, "cold", r, "≥ 0.90", None if r is None else r >= 0.9,
              f"curl {fmt(cv)} MiB/s")

    # (d) origin bytes against the bytes the trace needs.
    for w in TRACES:
        for s in ours:
            for d in [d for d in res.delays if res.get(w, s, "cold", d)] or [2.0]:
                row = res.get(w, s, "cold", d) or {}
                ob, uniq = num(row.get("origin_bytes")), num(row.get("unique_bytes"))
                if uniq is None:
                    uniq = unique_fallback.get(w)
                r = ratio(ob, uniq)
                g.add("(d) origin bytes ≤ 1.3 × unique", w, s, d, "cold", r, "≤ 1.30", None if r is None else r <= 1.3,
                      f"{fmt(None if ob is None else ob / MIB, 1)} of {fmt(None if uniq is None else uniq / MIB, 1)} MiB")
    return g


def plots(res, outdir):
    """Writes img/<workload>.dat/.gp; runs gnuplot if there is one. Returns {workload: png or None}, a note."""
    img = os.path.join(outdir, "img")
    os.makedirs(img, exist_ok=True)
    gnuplot = shutil.which("gnuplot")
    terminal = "pngcairo size 1280,640 font ',10'"
    if gnuplot and subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True).returncode != 0:
        terminal = "png size 1280,640"
    made, failed = {}, []
    for w in res.workloads:
        cols = [(d, mode) for d in res.delays for mode in res.modes
                if any(res.get(w, s, mode, d) for s in res.systems)]
        systems = [s for s in res.systems if any(res.get(w, s, mo, d) for d, mo in cols)]
        dat, gp, png = (os.path.join(img, f"{w}.{ext}") for ext in ("dat", "gp", "png"))
        with open(dat, "w") as f:
            f.write("system " + " ".join(f'"{mode} {delay_label(d)}"' for d, mode in cols) + "\n")
            for s in systems:
                vals = [num((res.get(w, s, mode, d) or {}).get(res.time_field)) for d, mode in cols]
                f.write(f'"{s}" ' + " ".join("?" if v is None else f"{v:.6g}" for v in vals) + "\n")
        # Cold bars in blues, warm in oranges, darker for a longer delay.
        colors = {"cold": ["#9ecae1", "#4292c6", "#08519c", "#08306b"],
                  "warm": ["#fdae6b", "#f16913", "#a63603", "#7f2704"]}
        plot = []
        for i, (d, mode) in enumerate(cols):
            shades = colors.get(mode, ["#999999"])
            color = shades[min(res.delays.index(d), len(shades) - 1)]
            plot.append(f"'{os.path.basename(dat)}' using {i + 2}:xtic(1) title columnhead lc rgb '{color}'")
        with open(gp, "w") as f:
            f.write(f"""# {w}: wall time per system, cold and warm, at each delay (bench/report.py)
set terminal {terminal}
set output '{os.path.basename(png)}'
set title "{w}: time per system (s, log scale; lower is better)"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y
set ylabel "seconds"
set grid ytics
set key outside right top
set xtics rotate by 30 right
plot {", ".join(plot) if plot else "NaN notitle"}
""")
        made[w] = None
        if gnuplot and cols:
            p = subprocess.run([gnuplot, os.path.basename(gp)], cwd=img, capture_output=True, text=True)
            if p.returncode == 0 and os.path.exists(png):
                made[w] = f"img/{w}.png"
            else:
                failed.append(f"{w}: {p.stderr.strip()}")
    if not gnuplot:
        note = ("gnuplot was not found, so there are no PNGs: install it (`apt-get install gnuplot-nox`) and run "
                f"`cd {img} && for f in *.gp; do gnuplot $f; done`.")
    elif failed:
        note = "gnuplot failed for " + "; ".join(failed)
    else:
        note = ""
    return made, note


def fio_table(res, fio_rows):
    """fio's sequential MiB/s and random IOPS on each system's warm cache,
    beside the replayer's figure for the same cell (a cross-check)."""
    if not fio_rows:
        return []
    out = ["## fio cross-check", "",
           "fio on each system's file right after its warm replay (psync, `direct=0`, `invalidate=1`, "
           "`fadvise_hint=0`; `bench/fio_check.sh`): 1 MiB sequential reads of 512 MiB and 2,000 random "
           "4 KiB reads, beside the replayer's warm figure for the same workload and delay.", "",
           "| system | delay | fio seq MiB/s | replayer seq MiB/s | fio random IOPS | replayer random IOPS |",
           "|---|---|---|---|---|---|"]
    cells = {}
    for r in fio_rows:
        cells[(r.get("system"), num(r.get("delay_ms")), r.get("job"))] = r
    for system, delay in sorted({(k[0], k[1]) for k in cells}, key=lambda k: (k[1] or 0, str(k[0]))):
        seq, rnd = cells.get((system, delay, "seq")) or {}, cells.get((system, delay, "random")) or {}
        out.append(f"| {system} | {delay_label(delay)} | {fmt(num(seq.get('throughput_mib_s')), 0)} | "
                   f"{fmt(res.value('seq', system, 'warm', delay), 0)} | {fmt(num(rnd.get('iops')), 0)} | "
                   f"{fmt(res.value('random', system, 'warm', delay), 0)} |")
    return out + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("outdir")
    ap.add_argument("--workloads", help="make_workloads.py's workloads.json (unique_bytes for rows without it)")
    ap.add_argument("--time-field", default="seconds",
                    help="the time column (default seconds, the replay's wall time; read_time_s is the sum of the "
                         "read latencies, the one to use if the traces were replayed with --timed)")
    a = ap.parse_args()
    rows = load(a.results)
    # fio's cross-check rows (bench/run: tool "fio") get their own table.
    fio_rows = [r for r in rows if r.get("tool") == "fio"]
    rows = [r for r in rows if r.get("tool") != "fio"]
    unique_fallback = {}
    if a.workloads:
        try:
            with open(a.workloads) as f:
                unique_fallback = {k: num(v.get("unique_bytes")) for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError) as e:
            print(f"report.py: {a.workloads}: {e}", file=sys.stderr)
            return 2
    res = Results(rows, a.time_field)
    os.makedirs(a.outdir, exist_ok=True)

    md = ["# Side-by-side benchmark", ""]
    md.append(f"{len(rows)} runs from `{a.results}`: {len(res.systems)} systems, {len(res.workloads)} workloads, "
              f"delays {', '.join(delay_label(d) for d in res.delays) or DASH}.")
    md.append("")
    bad = [r for r in rows if num(r.get("mismatches"))]
    if bad:
        md += ["## ⚠ Reads that differ from the image", "",
               "These runs read bytes that are not the image's; their numbers are not valid.", ""]
        md += [f"* {r['system']} / {r['workload']} / {r['mode']} / {delay_label(r['delay_ms'])}: "
               f"{int(num(r['mismatches']))} mismatches (line {r['_line']})" for r in bad]
        md.append("")
    failed = [r for r in rows if r.get("error")]
    if failed:
        md += ["## Runs that did not finish", "",
               "No figure for these cells (✗ in the tables); the system was stopped and the run went on.", ""]
        md += [f"* {r['system']} / {r['workload']} / {r['mode']} / {delay_label(r['delay_ms'])}: {r['error']}"
               for r in failed]
        md.append("")
    md += ["How to read the tables: one per workload; a row per system; for each delay and mode, the main value "
           f"(seq: MiB/s, random: IOPS = reads / s, the others: time in s, `{a.time_field}`), read latency p50 / p99, "
           "the requests and bytes the system fetched from the origin, the latter over the bytes the workload "
           "needs (its unique bytes), and the main value over the `local` row's (the image file, same delay, else "
           "the nearest one, as noted) and over the best peer's (peers: every system but `local`, `curl` and "
           "`affinityfs*`). Ratios are value / reference: above 1 is slower for a time, faster for MiB/s or IOPS. "
           f"{DASH}: not measured.", ""]
    made, plot_note = plots(res, a.outdir)
    for w in res.workloads:
        md += [f"## {w}", ""]
        out, notes = table(res, w, unique_fallback)
        md += out + [""] + [f"* {n}" for n in notes] + [""]
        if made.get(w):
            md += [f"![{w}]({made[w]})", ""]
    if plot_note:
        md += [f"Plots: {plot_note}", ""]

    md += fio_table(res, fio_rows)

    g = goals(res, unique_fallback)
    md += ["## Goals", "",
           "Each from the same results file; a goal whose cells are missing is *not measured*. "
           + ", ".join(f"{n} {k}" for k, n in sorted(g.counts.items())) + ".", "",
           "| goal | workload | system | delay | mode | value | need | result | reference |",
           "|---|---|---|---|---|---|---|---|---|"] + g.lines + [""]
    with open(os.path.join(a.outdir, "results.md"), "w") as f:
        f.write("\n".join(md))
    print(f"report.py: wrote {os.path.join(a.outdir, 'results.md')}"
          + (f" ({plot_note})" if plot_note else ""), file=sys.stderr)
    for r in failed:
        print(f"report.py: {r['system']} {r['workload']} {r['mode']} {delay_label(r['delay_ms'])}: {r['error']}",
              file=sys.stderr)
    if bad:
        print(f"report.py: {len(bad)} runs read bytes that differ from the image", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
