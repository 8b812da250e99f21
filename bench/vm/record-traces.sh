#!/usr/bin/env bash
# Records real block-access traces of the bench/vm guest: an affinity-storaged
# serves the guest's root.raw, and for every session a FRESH affinityfs mount
# (new cache directory, so a new recorded session with a cold cache) serves
# it to QEMU (bench/vm/boot.sh, TCG, a qcow2 overlay on local disk takes the
# writes). affinityfs records every read it serves and uploads the records to
# the storage host (STATE/profile.sqlite, docs/profile.md); each session is
# exported from there as OUT_DIR/KIND-I.csv:
#   time_s,offset,length,op      (seconds since the session started, microseconds; ordered by seq)
# and OUT_DIR/summary.txt gets one line per trace (reads, bytes, unique bytes
# at 4 KiB / 64 KiB / 256 KiB / 1 MiB granularity, duration). OUT_DIR/sessions.txt
# lists the session ids, seeds and boot times; OUT_DIR/logs/ keeps the serial
# consoles, affinityfs's logs and statistics. The kernel and initrd are read from local disk, not the mount.
#
# Usage: bench/vm/record-traces.sh OUT_DIR
# Environment:
#   BUILD_DIR      affinityfs build (default: build/ of this checkout)
#   IMAGE_DIR      guest image, built there by build-image.sh if missing
#                  (default /var/tmp/affinity-vm-image)
#   BOOT_SESSIONS  boot-only sessions (default 4), seeds 1..N
#   DB_SESSIONS    db sessions (default 4), seeds 1..N
#   SERVICES_SESSIONS  services sessions (default 0), seeds 1..N
#   SESSIONS       instead of the three above: "KIND:COUNT ..." in this order,
#                  e.g. SESSIONS="services:3" (KIND: boot, db or services)
#   CHUNK_SIZE     affinityfs --chunk-size (default: affinityfs's own, 256K)
#   BOOT_TIMEOUT   per session, passed to boot.sh (default 300 boot, 420 db, 600 services)
# OUT_DIR/packages.txt is a copy of the image's package list.
# Needs root for the first image build (debootstrap); FUSE and qemu-system-x86.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
build=${BUILD_DIR:-$here/../../build}
bin=$(cd "$build/bin" && pwd)
image_dir=${IMAGE_DIR:-/var/tmp/affinity-vm-image}
sessions=${SESSIONS:-boot:${BOOT_SESSIONS:-4} db:${DB_SESSIONS:-4} services:${SERVICES_SESSIONS:-0}}
for spec in $sessions; do
  case $spec in
    boot:* | db:* | services:*) case ${spec#*:} in '' | *[!0-9]*) ;; *) continue ;; esac ;;
  esac
  echo "record-traces: SESSIONS: \"$spec\" is not KIND:COUNT (KIND boot, db or services)" >&2
  exit 2
done
vm="vm-trace"
chunk_args=()
[ -z "${CHUNK_SIZE:-}" ] || chunk_args=(--chunk-size "$CHUNK_SIZE")

say() { echo "record-traces: $*" >&2; }

for tool in qemu-system-x86_64 qemu-img fusermount3 getfattr sqlite3 python3; do
  command -v "$tool" >/dev/null || { say "missing $tool"; exit 1; }
done
if [ ! -x "$bin/affinityfs" ] || [ ! -x "$bin/affinity-storaged" ]; then
  say "build affinityfs first ($build)"
  exit 1
fi

"$here/build-image.sh" "$image_dir"
cp "$image_dir/packages.txt" "$out/packages.txt"

work=$(mktemp -d "${TMPDIR:-/tmp}/affinity-vm-traces.XXXXXX")
boot_pid=
cleanup() {
  # QEMU first (it holds the mount), then the mounts and the daemons.
  if [ -n "$boot_pid" ]; then
    kill "$boot_pid" 2>/dev/null || true
    wait "$boot_pid" 2>/dev/null || true
  fi
  bench_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gen_certs "$work/certs"
mkdir -p "$work/root/$vm" "$work/state" "$out/logs"
# The storage host serves a link to (or a sparse copy of) the built image.
ln "$image_dir/root.raw" "$work/root/$vm/root.raw" 2>/dev/null ||
  cp --sparse=always "$image_dir/root.raw" "$work/root/$vm/root.raw"
start_storaged "$bin/affinity-storaged" "$work/root" "$work/state" "$work/certs"
url="https://127.0.0.1:$STORAGED_PORT"
profile_db=$work/state/profile.sqlite

xattr() { getfattr --only-values -n "user.affinity.$1" "$2" 2>/dev/null; }

# export_session SESSION CSV: the session's reads of root.raw, in seq order.
export_session() {
  python3 - "$profile_db" "$1" "$2" <<'PY'
import sqlite3, sys
db, session, path = sys.argv[1:4]
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
rows = con.execute("SELECT seq, image, offset, length, op, t_us FROM accesses WHERE session=? ORDER BY seq",
                   (session,)).fetchall()
for i, r in enumerate(rows):
    if r[0] != i:
        sys.exit("session %s: seq %d where %d was expected (a gap)" % (session, r[0], i))
    if r[1] != "root.raw":
        sys.exit("session %s: a read of %s" % (session, r[1]))
ops = {0: "R", 1: "W", "R": "R", "W": "W"}  # the storage host keeps op as 0 (read) / 1 (write)
with open(path + ".tmp", "w") as f:
    f.write("time_s,offset,length,op\n")
    for _, _, off, length, op, t_us in rows:
        f.write("%d.%06d,%d,%d,%s\n" % (t_us // 1000000, t_us % 1000000, off, length, ops[op]))
import os
os.replace(path + ".tmp", path)
print(len(rows))
PY
}

: >"$out/sessions.txt.tmp"
printf '%-10s %-8s %-4s %-28s %8s %12s %10s\n' trace kind seed session reads wall_s guest_s >>"$out/sessions.txt.tmp"
run_session() {
  local kind=$1 i=$2 seed=$3 timeout_s=$4
  local name=$kind-$i cache=$work/cache-$kind-$i mnt=$work/mnt t0 t1 rc=0 recorded dropped pending n session
  mount_affinityfs "$bin/affinityfs" "$mnt" "$url" "$vm" "$cache" "$work/certs" "${chunk_args[@]}"
  t0=$(now)
  BOOT_TIMEOUT=$timeout_s BOOT_LOG="$out/logs/$name.log" BOOT_WORKDIR="$work/boot" \
    "$here/boot.sh" "$mnt/root.raw" "$image_dir/vmlinuz" "$image_dir/initrd.img" "$kind" "$seed" &
  boot_pid=$!
  wait "$boot_pid" || rc=$?
  boot_pid=
  t1=$(now)
  [ "$rc" = 0 ] || { say "$name: the guest did not finish (boot.sh exit $rc)"; return 1; }
  # Wait until every recorded access is on the storage host, then unmount.
  local _
  for _ in $(seq 1 600); do
    pending=$(xattr accesses_pending "$mnt")
    [ "$pending" = 0 ] && break
    sleep 0.1
  done
  recorded=$(xattr accesses_recorded "$mnt")
  dropped=$(xattr accesses_dropped "$mnt")
  getfattr -d -m '^user\.affinity\.' "$mnt" "$mnt/root.raw" >"$out/logs/$name.stats" 2>&1 || true
  [ "$pending" = 0 ] || say "$name: warning: $pending accesses still pending before the unmount"
  [ "$dropped" = 0 ] || say "$name: warning: affinityfs dropped $dropped accesses (ring full)"
  umount_affinityfs "$mnt"
  session=$(sqlite3 "$profile_db" "SELECT session FROM sessions ORDER BY start_ms DESC, received_ms DESC LIMIT 1")
  if grep -q " $session " "$out/sessions.txt.tmp"; then
    say "$name: no new session on the storage host"
    return 1
  fi
  n=$(export_session "$session" "$out/$name.csv")
  [ "$n" = "$recorded" ] || say "$name: warning: $recorded accesses recorded, $n on the storage host"
  printf '%-10s %-8s %-4s %-28s %8s %12.1f %10s\n' "$name" "$kind" "$seed" "$session" "$n" \
    "$(echo "$t1 - $t0" | bc -l)" "$(grep -a -o 'AFFINITY-WORKLOAD-DONE.*uptime=[0-9.]*' "$out/logs/$name.log" |
      tail -1 | sed 's/.*uptime=//')" >>"$out/sessions.txt.tmp"
  say "$name: seed $seed, session $session, $n reads, $(echo "$t1 - $t0" | bc -l | xargs printf %.1f) s"
  mv "$cache.log" "$out/logs/$name.affinityfs.log" 2>/dev/null || true
  rm -rf "$cache" "$cache.grant"
}

for spec in $sessions; do
  kind=${spec%%:*}
  case $kind in boot) timeout_s=300 ;; db) timeout_s=420 ;; *) timeout_s=600 ;; esac
  for i in $(seq 1 "${spec#*:}"); do run_session "$kind" "$i" "$i" "${BOOT_TIMEOUT:-$timeout_s}"; done
done
mv "$out/sessions.txt.tmp" "$out/sessions.txt"

python3 - "$out" >"$out/summary.txt" <<'PY'
import csv, glob, os, re, sys
out = sys.argv[1]
def key(p):
    m = re.match(r"(\w+)-(\d+)\.csv$", os.path.basename(p))
    return ({"boot": 0, "db": 1}.get(m.group(1), 2), m.group(1), int(m.group(2)))
paths = sorted((p for p in glob.glob(os.path.join(out, "*.csv")) if re.match(r"\w+-\d+\.csv$", os.path.basename(p))), key=key)
w = max([8] + [len(os.path.basename(p)) - 4 for p in paths])
print("%-*s %8s %10s %10s %10s %10s %10s %9s" % (w, "trace", "reads", "MiB_read", "uniq4K", "uniq64K", "uniq256K", "uniq1M", "dur_s"))
print("%-*s %8s %10s %10s %10s %10s %10s %9s" % (w, "", "", "", "MiB", "MiB", "MiB", "MiB", ""))
for p in paths:
    n = total = 0
    t_first = t_last = None
    sets = {12: set(), 16: set(), 18: set(), 20: set()}
    with open(p) as f:
        r = csv.reader(f)
        assert next(r) == ["time_s", "offset", "length", "op"]
        for t, off, length, op in r:
            t, off, length = float(t), int(off), int(length)
            n += 1
            total += length
            t_first = t if t_first is None else t_first
            t_last = t
            if length == 0:
                continue
            for shift, s in sets.items():
                s.update(range(off >> shift, ((off + length - 1) >> shift) + 1))
    uniq = {shift: (len(s) << shift) / 2**20 for shift, s in sets.items()}
    dur = (t_last - t_first) if n else 0.0
    print("%-*s %8d %10.1f %10.1f %10.1f %10.1f %10.1f %9.1f" % (
        w, os.path.basename(p)[:-4], n, total / 2**20, uniq[12], uniq[16], uniq[18], uniq[20], dur))
print()
print("MiB = 2^20 bytes. uniqX: distinct X-aligned blocks touched by any read, times X. dur_s: first to last read.")
PY
cat "$out/summary.txt"
