#!/usr/bin/env python3
"""Tests of the side-by-side benchmark's tools (issue 7): make_workloads.py,
report.py (on results.jsonl here: synthetic numbers, a missing cell, a
repeated cell, a row without measurements) and fio_check.sh.

    python3 bench/testdata/bench_tools_test.py [path/to/affinity-trace-replay]

With the replayer's path (ctest passes it), the generated workloads are also
replayed against a sparse file of the image's size and its counts compared
with workloads.json. Skips what needs a missing tool (zstd, fio, gnuplot).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
FIXTURE = os.path.join(HERE, "results.jsonl")
REPLAYER = None


def read(path):
    with open(path) as f:
        return f.read()


def run(args, env=None):
    return subprocess.run(args, capture_output=True, text=True, env=env)


class Report(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def report(self, rows=None, env=None, extra=()):
        src = FIXTURE
        if rows is not None:
            src = os.path.join(self.dir, "in.jsonl")
            with open(src, "w") as f:
                f.writelines(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows)
        out = os.path.join(self.dir, "out")
        p = run([sys.executable, os.path.join(BENCH, "report.py"), src, out, *extra], env=env)
        md = read(os.path.join(out, "results.md")) if os.path.exists(os.path.join(out, "results.md")) else ""
        return p, md, out

    def fixture_rows(self):
        return [json.loads(line) for line in read(FIXTURE).splitlines()]

    def goal(self, md, goal, workload, system):
        lines = [line for line in md.splitlines() if line.startswith(f"| {goal} | {workload} | {system} |")]
        self.assertTrue(lines, f"no goal line {goal} {workload} {system}")
        return lines[0]

    def test_tables_goals_and_plots(self):
        p, md, out = self.report()
        self.assertEqual(p.returncode, 0, p.stderr)
        for w in ("seq", "random", "boot", "db", "cutover"):
            self.assertIn(f"## {w}\n", md)
            self.assertTrue(os.path.exists(os.path.join(out, "img", f"{w}.gp")))
            self.assertTrue(os.path.exists(os.path.join(out, "img", f"{w}.dat")))
        # The missing cell (httpdirfs, db, 2 ms warm) and the row without numbers.
        httpdirfs_db = [line for line in md.split("## db")[1].splitlines() if line.startswith("| httpdirfs |")][0]
        self.assertTrue(httpdirfs_db.endswith("| — | — | — | — | — | — |"), httpdirfs_db)
        self.assertIn("| nbdfuse | — |", md)
        self.assertIn("1.50 (median of 4)", md)
        # fio's rows: their own table, not a workload of their own.
        self.assertIn("## fio cross-check\n", md)
        self.assertNotIn("## fio-seq", md)
        self.assertRegex(md, r"\| affinityfs-engine \| 0 ms \| 1,234 \| [^|]+ \| 38,400 \|")
        # Ratios: boot, engine 2 ms cold 0.32 s against local 0.30 s (at 0 ms) and httpdirfs 3.00 s.
        self.assertIn("| 1.07 | ≤ 1.10 | pass | local 0.30 s at 0 ms |", self.goal(md, "(a) time ≤ 1.10 × local", "boot",
                                                                          "affinityfs-engine"))
        self.assertIn("| 9.38 | ≥ 3.00 | pass |", self.goal(md, "(a) ≥ 3× faster than best peer", "boot",
                                                             "affinityfs-engine"))
        self.assertIn("| 1.25 | ≤ 1.10 | **FAIL** |", self.goal(md, "(a) time ≤ 1.10 × local", "db", "affinityfs-engine"))
        self.assertIn("| pass |", self.goal(md, "(b) time ≤ best peer", "cutover", "affinityfs-none"))
        self.assertIn("| 0.33 | ≥ 0.50 | **FAIL** |", self.goal(md, "(c) warm random ≥ 0.5 × local warm", "random",
                                                                  "affinityfs-none"))
        self.assertIn("| 0.92 | ≥ 0.90 | pass |", self.goal(md, "(c) cold seq ≥ 0.9 × curl", "seq", "affinityfs-engine"))
        self.assertIn("| 1.20 | ≤ 1.30 | pass |", self.goal(md, "(d) origin bytes ≤ 1.3 × unique", "db",
                                                             "affinityfs-engine"))
        if shutil.which("gnuplot"):
            self.assertIn("![db](img/db.png)", md)
            with open(os.path.join(out, "img", "db.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_missing_systems_are_not_measured(self):
        rows = [r for r in self.fixture_rows() if r["system"] not in ("affinityfs-engine", "curl", "local")]
        p, md, _ = self.report(rows)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("| — | ≤ 1.10 | not measured |", self.goal(md, "(a) time ≤ 1.10 × local", "db", "affinityfs-engine"))
        self.assertIn("| not measured |", self.goal(md, "(c) cold seq ≥ 0.9 × curl", "seq", "affinityfs-none"))
        self.assertIn("| not measured |", self.goal(md, "(c) warm seq ≥ 0.9 × local warm", "seq", "affinityfs-none"))

    def test_no_rows_bad_lines_and_nulls(self):
        p, md, _ = self.report(["not json\n", "\n", '{"system": "x"}\n', "[1, 2]\n",
                                '{"system":"local","workload":"boot","mode":"cold","delay_ms":0,"seconds":null,'
                                '"p50_us":"n/a","unique_bytes":0,"origin_bytes":5}\n'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(":1: not JSON", p.stderr)
        self.assertIn("| local | — |", md)
        self.assertIn("not measured", md)
        p, md, _ = self.report([])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("## Goals", md)

    def test_mismatches_are_reported_and_fail(self):
        rows = self.fixture_rows()
        rows[3]["mismatches"] = 2
        p, md, _ = self.report(rows)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Reads that differ from the image", md)
        self.assertIn("⚠ 2 mismatches", md)

    def test_a_run_that_hung_is_listed_not_measured(self):
        rows = self.fixture_rows()
        hung = next(r for r in rows if r["system"] == "rclone" and r["workload"] == "boot" and r["mode"] == "warm")
        for k in ("seconds", "p50_us", "p99_us"):
            hung.pop(k, None)
        hung["error"] = "hung: no reply in 120 s"
        p, md, _ = self.report(rows)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("## Runs that did not finish", md)
        self.assertIn(f"* rclone / boot / warm / {hung['delay_ms']:g} ms: hung: no reply in 120 s", md)
        self.assertIn("| ✗ hung: no reply in 120 s |", md)
        self.assertIn("hung: no reply in 120 s", p.stderr)

    def test_without_gnuplot_the_scripts_are_still_written(self):
        empty = os.path.join(self.dir, "empty-path")
        os.mkdir(empty)
        p, md, out = self.report(env=dict(os.environ, PATH=empty))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("gnuplot was not found", md)
        self.assertTrue(os.path.exists(os.path.join(out, "img", "boot.gp")))
        self.assertNotIn("![boot]", md)

    def test_workloads_json_fills_unique_bytes(self):
        rows = [dict(r) for r in self.fixture_rows()]
        for r in rows:
            r.pop("unique_bytes", None)
        wl = os.path.join(self.dir, "workloads.json")
        with open(wl, "w") as f:
            json.dump({"db": {"reads": 1, "bytes": 1, "unique_bytes": 142704640}}, f)
        p, md, _ = self.report(rows, extra=["--workloads", wl])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("| 1.20 | ≤ 1.30 | pass |", self.goal(md, "(d) origin bytes ≤ 1.3 × unique", "db",
                                                             "affinityfs-none"))
        self.assertIn("| not measured |", self.goal(md, "(d) origin bytes ≤ 1.3 × unique", "boot", "affinityfs-none"))


@unittest.skipUnless(shutil.which("zstd"), "zstd is not installed")
class MakeWorkloads(unittest.TestCase):
    SIZE = 2 << 30  # the traces' image

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.out = os.path.join(cls.dir, "w")
        p = run([sys.executable, os.path.join(BENCH, "make_workloads.py"), cls.out, "--image-size", "2G"])
        assert p.returncode == 0, p.stderr
        cls.meta = json.loads(read(os.path.join(cls.out, "workloads.json")))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def records(self, name):
        lines = read(os.path.join(self.out, f"{name}.csv")).splitlines()
        self.assertEqual(lines[0], "time_s,offset,length,op")
        return [(float(t), int(o), int(n), op) for t, o, n, op in (line.split(",") for line in lines[1:])]

    def test_seq_and_random(self):
        seq = self.records("seq")
        self.assertEqual(seq, [(0.0, i << 20, 1 << 20, "R") for i in range(512)])
        rnd = self.records("random")
        self.assertEqual(len(rnd), 2000)
        self.assertEqual(len({o for _, o, _, _ in rnd}), 2000)
        self.assertTrue(all(t == 0 and o % 4096 == 0 and n == 4096 and o + n <= self.SIZE for t, o, n, _ in rnd))
        self.assertEqual(self.meta["random"]["unique_bytes"], 2000 * 4096)
        self.assertEqual(self.meta["seq"]["unique_bytes"], 512 << 20)
        # The seed is fixed: the same offsets every time (first one pinned).
        self.assertEqual(rnd[0][1], 1390850048)

    def test_traces_and_cutover(self):
        db_text = subprocess.run(["zstd", "-dcq", os.path.join(BENCH, "traces", "db-4.csv.zst")], check=True,
                                 capture_output=True, text=True).stdout
        self.assertEqual(read(os.path.join(self.out, "db.csv")), db_text)
        db, cut = self.records("db"), self.records("cutover")
        after = [r for r in db if r[0] >= 30]
        self.assertEqual(len(cut), len(after))
        self.assertEqual([r[1:] for r in cut], [r[1:] for r in after])
        self.assertTrue(all(abs(c[0] - (a[0] - 30)) < 2e-6 for c, a in zip(cut, after)))
        self.assertEqual(self.meta["db"]["reads"], len(db))
        self.assertEqual(self.meta["boot"]["reads"], 883)
        self.assertEqual(self.meta["boot"]["unique_bytes"], 37097472)  # 35.4 MiB, bench/traces/README.md
        for w in self.meta.values():
            self.assertLessEqual(w["unique_bytes"], w["bytes"])

    def test_too_small_an_image_is_refused(self):
        p = run([sys.executable, os.path.join(BENCH, "make_workloads.py"), os.path.join(self.dir, "x"),
                 "--image-size", "100M"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("smaller than the sequential workload", p.stderr)

    @unittest.skipUnless(REPLAYER, "no replayer path given")
    def test_the_replayer_reads_what_workloads_json_says(self):
        image = os.path.join(self.dir, "sparse.raw")
        with open(image, "wb") as f:
            f.truncate(self.SIZE)
        for name in ("random", "boot", "cutover"):
            p = run([REPLAYER, "--trace", os.path.join(self.out, f"{name}.csv"), "--target", image, "--json"])
            self.assertEqual(p.returncode, 0, p.stderr)
            r = json.loads(p.stdout)
            self.assertEqual((r["reads"], r["bytes"]), (self.meta[name]["reads"], self.meta[name]["bytes"]), name)
        p = run([REPLAYER, "--trace", os.path.join(self.out, "db.csv"), "--from", "30", "--target", image, "--json"])
        self.assertEqual(json.loads(p.stdout)["reads"], self.meta["cutover"]["reads"])


@unittest.skipUnless(shutil.which("fio"), "fio is not installed")
class FioCheck(unittest.TestCase):
    def test_two_json_lines(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "img")
            with open(f, "wb") as out:
                out.write(os.urandom(8 << 20))
            p = run(["bash", os.path.join(BENCH, "fio_check.sh"), f, "8M"], env=dict(os.environ, RANDOM_IOS="100"))
            self.assertEqual(p.returncode, 0, p.stderr)
            jobs = [json.loads(line) for line in p.stdout.splitlines()]
            self.assertEqual([j["job"] for j in jobs], ["seq", "random"])
            self.assertEqual((jobs[0]["reads"], jobs[0]["bytes"]), (8, 8 << 20))
            self.assertEqual((jobs[1]["reads"], jobs[1]["bytes"]), (100, 100 * 4096))
            self.assertTrue(all(j["fadvise_hint"] == 0 and j["throughput_mib_s"] > 0 for j in jobs))
            self.assertNotEqual(run(["bash", os.path.join(BENCH, "fio_check.sh"), f]).returncode, 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        REPLAYER = os.path.abspath(sys.argv.pop(1))
    unittest.main()
