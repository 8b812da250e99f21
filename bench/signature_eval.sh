#!/usr/bin/env bash
# Application signatures evaluation (issue 6): a VM with NO history, on a
# Debian image with the same applications as another VM whose starts were
# traced but other packages (so every file sits elsewhere): how much of its
# first minute the prefetch plan covers, how much of what it prefetches is
# used, and how long its start takes, against no prefetch and against the
# same VM with its own history. In one run on this machine:
#   local     image B as a local file, page cache dropped (the limit)
#   none      affinityfs, no prefetch (demand and sequential read-ahead only)
#   shipped   affinityfs, the plan from the shipped signatures only
#             (profile/signatures, derived from image A's traces)
#   taught    shipped signatures plus what image A's traced starts taught the
#             storage host, as paths and file ranges (learning from history)
#   own       affinityfs with B's own history (its starts 1..N-1): the
#             profile a VM gets once it has run here
# Every system replays B's last start (services-N: boot, PostgreSQL, nginx,
# Redis up, one request each), timed (reads at their recorded times) and
# fast (back to back), and every byte read is checked against the image.
# The storage host emulates the round trip (--test-delay-ms) on a shared
# 1 Gbit/s FIFO link (--test-bandwidth).
#
# Profiles are built offline with `affinityctl profile build --guest-image
# [--teacher-image --teacher-trace]`, which runs the storage host's code
# (profile/signature_profile.h): inspect, detect, learn, priors, blend.
#
# The traces must have been recorded on these very images: a rebuilt image
# puts its files elsewhere. bench/traces/apps-*/image-fingerprint.txt holds
# the SHA-256 of the bytes services-1 read; if the images are missing or
# differ, they are built (bench/vm/build-image.sh, root, ~3 min) and traced
# again (bench/vm/record-traces.sh, QEMU TCG, ~4 min) into the work dir.
#
# Usage: bench/signature_eval.sh [BUILD_DIR] > results.md
# Env: RTTS="2" BANDWIDTH=125M CHUNK=64K IMAGE_A=/var/tmp/affinity-apps-a IMAGE_B=/var/tmp/affinity-apps-b
#      SYSTEMS="local none shipped taught own" RAW=FILE (JSON lines)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
build=${1:-$here/../build}
rtts=${RTTS:-2}
bandwidth=${BANDWIDTH:-125M}
chunk=${CHUNK:-64K}
systems=${SYSTEMS:-local none shipped taught own}
image_a=${IMAGE_A:-/var/tmp/affinity-apps-a}
image_b=${IMAGE_B:-/var/tmp/affinity-apps-b}
bin=$(cd "$build/bin" && pwd)
ctl=$bin/affinityctl
work=$(mktemp -d /tmp/affinity-signatures.XXXXXX)
raw=${RAW:-$work/raw.jsonl}
trap 'bench_cleanup; rm -rf "$work"' EXIT
say() { echo "signature_eval: $*" >&2; }

packages_a=postgresql,mariadb-server,nginx,redis-server,python3
packages_b=postgresql,nginx,redis-server,git,vim-tiny,less,curl,perl

# traces_for NAME IMAGE_DIR PACKAGES: the dir of NAME's traces recorded on IMAGE_DIR (made if need be).
traces_for() {
  local name=$1 dir=$2 packages=$3 committed=$here/traces/$1 fp
  if [ -s "$dir/root.raw" ]; then
    fp=$(python3 "$here/trace_fingerprint.py" "$dir/root.raw" "$committed/services-1.csv.zst")
    if [ "$fp" = "$(cat "$committed/image-fingerprint.txt")" ]; then
      echo "$committed"
      return
    fi
    say "$dir/root.raw is not the image $committed was recorded on: tracing it again"
  else
    say "building $dir (EXTRA_PACKAGES=$packages)"
    EXTRA_PACKAGES=$packages DB_ROWS=0 IMAGE_SIZE=4G "$here/vm/build-image.sh" "$dir" >&2
  fi
  BUILD_DIR=$build IMAGE_DIR=$dir SESSIONS=services:3 "$here/vm/record-traces.sh" "$work/record-$name" >&2
  echo "$work/record-$name"
}

unpack() {  # unpack DIR OUT_PREFIX: services-*.csv[.zst] -> OUT_PREFIX-N.csv, sorted
  local f n=0
  for f in $(ls "$1"/services-*.csv* | sort -V); do
    n=$((n + 1))
    case $f in
      *.zst) zstd -q -d -c "$f" >"$2-$n.csv" ;;
      *) cp "$f" "$2-$n.csv" ;;
    esac
  done
}

mkdir -p "$work/t"
unpack "$(traces_for apps-a "$image_a" "$packages_a")" "$work/t/a"
unpack "$(traces_for apps-b "$image_b" "$packages_b")" "$work/t/b"
mapfile -t a_traces < <(ls "$work"/t/a-*.csv | sort -V)
mapfile -t b_traces < <(ls "$work"/t/b-*.csv | sort -V)
n=${#b_traces[@]}
[ "$n" -ge 2 ] && [ "${#a_traces[@]}" -ge 1 ] || { say "need >= 1 trace of A and >= 2 of B"; exit 1; }
replayed=${b_traces[n-1]}

# The served image: a sparse copy of B (the storage host takes no symlinks).
gen_certs "$work/certs"
mkdir -p "$work/root/vm-b"
cp --sparse=always "$image_b/root.raw" "$work/root/vm-b/root.raw"
image=$work/root/vm-b/root.raw

teach=()
for t in "${a_traces[@]}"; do teach+=(--teacher-trace "$t"); done
"$ctl" profile build --vm vm-b -o "$work/shipped.prof" --guest-image "$image" 2>"$work/shipped.txt" >/dev/null
"$ctl" profile build --vm vm-b -o "$work/taught.prof" --guest-image "$image" --teacher-image "$image_a/root.raw" \
  "${teach[@]}" 2>"$work/taught.txt" >/dev/null
"$ctl" profile build --vm vm-b -o "$work/own.prof" "${b_traces[@]:0:n-1}" >/dev/null
say "shipped: $(tail -n 1 "$work/shipped.txt")"
say "taught: $(tail -n 1 "$work/taught.txt")"

xattr() { getfattr --only-values -n "user.affinity.$2" "$1" 2>/dev/null || echo 0; }

run() {  # run RTT SYSTEM MODE: one replay; appends a JSON line to $raw
  local rtt=$1 system=$2 mode=$3 target out=$work/out.json timed=() pre="{}"
  [ "$mode" = timed ] && timed=(--timed)
  if [ "$system" = local ]; then
    drop_cache "$image"
    target=$image
  else
    rm -rf "$work/cache" "$work/cache.grant"
    local extra=(--prefetch off)
    [ "$system" = none ] || extra=(--prefetch adaptive --profile "$work/$system.prof" --arrival restart)
    mount_affinityfs "$bin/affinityfs" "$work/mnt" "$url" vm-b "$work/cache" "$work/certs" --chunk-size "$chunk" \
      --upload-interval 3600 "${extra[@]}"
    target=$work/mnt/root.raw
  fi
  "$bin/affinity-trace-replay" --trace "$replayed" --target "$target" "${timed[@]}" --json --verify "$image" >"$out"
  if [ "$system" != local ]; then
    pre=$(printf '{"prefetch_done_bytes":%s,"prefetch_used_bytes":%s,"prefetch_coverage":%s,"bytes_fetched":%s}' \
      "$(xattr "$work/mnt" prefetch_done_bytes)" "$(xattr "$work/mnt" prefetch_used_bytes)" \
      "$(xattr "$work/mnt" prefetch_coverage)" "$(xattr "$work/mnt" bytes_fetched)")
    umount_affinityfs "$work/mnt"
  fi
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(json.loads(sys.argv[2]));
r.update(rtt_ms=float(sys.argv[3]), system=sys.argv[4], mode=sys.argv[5]); print(json.dumps(r))' \
    "$out" "$pre" "$rtt" "$system" "$mode" >>"$raw"
}

: >"$raw"
for rtt in $rtts; do
  rm -rf "$work/state"
  mkdir -p "$work/state"
  start_storaged "$bin/affinity-storaged" "$work/root" "$work/state" "$work/certs" --no-signatures \
    --test-delay-ms "$rtt" --test-bandwidth "$bandwidth"
  url="https://127.0.0.1:$STORAGED_PORT"
  for system in $systems; do
    for mode in timed fast; do
      say "rtt $rtt ms: $system $mode"
      run "$rtt" "$system" "$mode"
    done
  done
  kill "${BENCH_PIDS[-1]}" 2>/dev/null || true
  wait "${BENCH_PIDS[-1]}" 2>/dev/null || true
done

python3 "$here/signature_report.py" "$raw" "$replayed" "$chunk" "$bandwidth" \
  "$(tail -n 1 "$work/shipped.txt")" "$(tail -n 1 "$work/taught.txt")"
