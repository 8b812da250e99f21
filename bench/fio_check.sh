#!/usr/bin/env bash
# fio cross-check of affinity-trace-replay's seq and random numbers (issue 7):
# the same kind of reads issued by an independent tool over the same file.
#
#   bench/fio_check.sh FILE SIZE        e.g. bench/fio_check.sh /mnt/vm-1/root.raw 512M
#
# Two fio jobs, one after the other, over the first SIZE bytes of FILE
# (SIZE as fio takes it: bytes or K/M/G, powers of 1024), read-only:
#   seq     sequential 1 MiB reads of all SIZE bytes
#   random  RANDOM_IOS (default 2000) random 4 KiB reads, 4 KiB-aligned,
#           no offset twice (fio's random map), --randseed=RANDSEED (default 7)
# both --ioengine=psync (one synchronous pread at a time, like the replayer)
# --direct=0 (through the page cache, like a VM's raw file without O_DIRECT)
# --invalidate=1 (fio drops FILE's page cache before each job with
# posix_fadvise(DONTNEED): the same as the replayer's --drop-page-cache)
# and --fadvise_hint=0.
#
# Why fadvise_hint=0: fio's default (1) calls posix_fadvise(SEQUENTIAL) before
# a sequential job and posix_fadvise(RANDOM) before a random one. On Linux
# that doubles the file's read-ahead window, or turns read-ahead off, and on
# a FUSE file read-ahead decides how large and how many the requests the
# daemon gets are. The replayer and QEMU give no such hint, so with the
# default fio would measure a different request stream than the workloads do
# (random 4 KiB reads become one FUSE request each, sequential ones become
# larger requests). With 0 fio reads with the kernel's default read-ahead.
#
# Output: one JSON line per job on stdout:
#   {"tool":"fio","job":"seq"|"random","file":..,"size":..,"bs":..,"reads":..,
#    "bytes":..,"seconds":..,"throughput_mib_s":..,"iops":..,"p50_us":..,
#    "p99_us":..,"max_us":..,"ioengine":"psync","direct":0,"fadvise_hint":0,
#    "invalidate":1}
# Exit: non-zero if fio fails (its messages on stderr).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 FILE SIZE   (e.g. $0 /mnt/vm-1/root.raw 512M)" >&2
  exit 2
fi
file=$1 size=$2
random_ios=${RANDOM_IOS:-2000} randseed=${RANDSEED:-7}
command -v fio >/dev/null || { echo "$0: fio not found (apt-get install fio)" >&2; exit 1; }
[ -r "$file" ] || { echo "$0: cannot read $file" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--filename="$file" --readonly --size="$size" --ioengine=psync --direct=0 --invalidate=1
  --fadvise_hint=0 --numjobs=1 --output-format=json)

run() {  # NAME BS FIO-ARGS...
  local name=$1 bs=$2
  shift 2
  fio --name="$name" --bs="$bs" "${common[@]}" "$@" >"$tmp/$name.json"
  python3 - "$tmp/$name.json" "$name" "$file" "$size" "$bs" <<'EOF'
import json, sys
path, name, file, size, bs = sys.argv[1:]
text = open(path).read()
# fio may print notes before its JSON object.
r = json.loads(text[text.index("{"):])["jobs"][0]["read"]
seconds = r["runtime"] / 1000.0
pct = r["clat_ns"].get("percentile", {})
print(json.dumps({
    "tool": "fio", "job": name, "file": file, "size": size, "bs": bs,
    "reads": r["total_ios"], "bytes": r["io_bytes"], "seconds": seconds,
    "throughput_mib_s": r["bw_bytes"] / 2**20, "iops": r["iops"],
    "p50_us": pct.get("50.000000", 0) / 1000.0, "p99_us": pct.get("99.000000", 0) / 1000.0,
    "max_us": r["clat_ns"]["max"] / 1000.0,
    "ioengine": "psync", "direct": 0, "fadvise_hint": 0, "invalidate": 1}))
EOF
}

run seq 1M --rw=read
run random 4k --rw=randread --number_ios="$random_ios" --randseed="$randseed"
