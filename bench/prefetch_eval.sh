#!/usr/bin/env bash
# Prefetch evaluation (issue 4): replays real VM block traces against a file
# on an affinityfs mount and compares, in one run on this machine:
#   local       the image as a local file, page cache dropped (the limit)
#   cold        affinityfs, no prefetch (pure demand + sequential read-ahead)
#   last-trace  affinityfs prefetching exactly the last session's blocks in
#               first-read order (the REAP / overlaybd baseline: --prefetch fixed
#               with a profile built from that one session)
#   engine      affinityfs with the full engine (--prefetch adaptive, a profile
#               learned from every training session)
# Two scenarios:
#   restart  the VM boots at the destination: learn on boot-1..N-1, replay boot-N
#   live     a running VM arrives mid-run: learn on db-1..N-1 plus db-N observed
#            until the cut-over CUT seconds in; replay db-N from CUT on, after a
#            LEAD-second handshake-to-cut-over window in which prefetch runs
# The storage host emulates the network with its test options: a fixed delay
# per reply (--test-delay-ms, the RTT) and a shared FIFO link (--test-bandwidth).
#
# Usage: bench/prefetch_eval.sh [BUILD_DIR] [TRACES_DIR] > results.md
# Env: RTTS="0.5 2" BANDWIDTH=125M (1 Gbit/s) CHUNK=64K CUT=30 LEAD=5 RAW=FILE (JSON lines)
#      SYSTEMS="local cold last-trace engine"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
build=${1:-$here/../build}
traces_in=${2:-$here/traces}
rtts=${RTTS:-0.5 2}
bandwidth=${BANDWIDTH:-125M}
chunk=${CHUNK:-64K}
cut=${CUT:-30}
lead=${LEAD:-5}
systems=${SYSTEMS:-local cold last-trace engine}
bin=$(cd "$build/bin" && pwd)
work=$(mktemp -d /tmp/affinity-prefetch.XXXXXX)
raw=${RAW:-$work/raw.jsonl}
trap 'bench_cleanup; rm -rf "$work"' EXIT

mkdir -p "$work/traces"
for f in "$traces_in"/*.csv "$traces_in"/*.csv.zst; do
  [ -e "$f" ] || continue
  case $f in
    *.zst) zstd -q -d -c "$f" >"$work/traces/$(basename "$f" .zst)" ;;
    *) cp "$f" "$work/traces/" ;;
  esac
done
mapfile -t boots < <(ls "$work"/traces/boot-*.csv 2>/dev/null | sort -V)
mapfile -t dbs < <(ls "$work"/traces/db-*.csv 2>/dev/null | sort -V)
[ "${#boots[@]}" -ge 2 ] || { echo "need at least two boot-*.csv traces in $traces_in" >&2; exit 1; }

# The image: random bytes, as large as the traces reach.
size=$(cat "$work"/traces/*.csv | awk -F, 'NR > 1 && $2 ~ /^[0-9]+$/ { e = $2 + $3; if (e > m) m = e } END { printf "%d", m }')
size_mib=$(( (size >> 20) + 1 ))
gen_certs "$work/certs"
mkdir -p "$work/root/vm-1"
head -c "${size_mib}M" /dev/urandom >"$work/root/vm-1/root.raw"
image=$work/root/vm-1/root.raw

ctl=$bin/affinityctl
n=${#boots[@]}
"$ctl" profile build --vm vm-1 -o "$work/boot-engine.prof" "${boots[@]:0:n-1}" >/dev/null
"$ctl" profile build --vm vm-1 -o "$work/boot-last.prof" "${boots[n-2]}" >/dev/null
if [ "${#dbs[@]}" -ge 2 ]; then
  m=${#dbs[@]}
  "$ctl" profile build --vm vm-1 -o "$work/db-engine.prof" --live "${dbs[m-1]}" --cut "$cut" "${dbs[@]:0:m-1}" >/dev/null
  "$ctl" profile build --vm vm-1 -o "$work/db-last.prof" "${dbs[m-2]}" >/dev/null
fi

xattr() { getfattr --only-values -n "user.affinity.$2" "$1" 2>/dev/null || echo 0; }

# run SCENARIO RTT SYSTEM TRACE FROM MODE: one replay; appends a JSON line to $raw.
run() {
  local scenario=$1 rtt=$2 system=$3 trace=$4 from=$5 mode=$6 target out extra=()
  out=$work/out.json
  local timed=()
  [ "$mode" = timed ] && timed=(--timed)
  if [ "$system" = local ]; then
    drop_cache "$image"
    target=$image
  else
    rm -rf "$work/cache" "$work/cache.grant"
    case $system in
      cold) extra=(--prefetch off) ;;
      last-trace) extra=(--prefetch fixed --profile "$work/$scenario-last.prof" --arrival restart) ;;
      engine) extra=(--prefetch adaptive --profile "$work/$scenario-engine.prof" --arrival "$([ "$scenario" = db ] && echo live || echo restart)") ;;
    esac
    mount_affinityfs "$bin/affinityfs" "$work/mnt" "$url" vm-1 "$work/cache" "$work/certs" --chunk-size "$chunk" \
      --upload-interval 3600 "${extra[@]}"
    target=$work/mnt/root.raw
    [ "$scenario" = db ] && sleep "$lead"  # the handshake-to-cut-over window
  fi
  "$bin/affinity-trace-replay" --trace "$trace" --target "$target" --from "$from" "${timed[@]}" --json \
    --verify "$image" >"$out"
  local pre="{}"
  if [ "$system" != local ]; then
    pre=$(printf '{"prefetch_done_bytes":%s,"prefetch_used_bytes":%s,"prefetch_coverage":%s,"demand_misses_while_queued":%s,"bytes_fetched":%s}' \
      "$(xattr "$work/mnt" prefetch_done_bytes)" "$(xattr "$work/mnt" prefetch_used_bytes)" \
      "$(xattr "$work/mnt" prefetch_coverage)" "$(xattr "$work/mnt" demand_misses_while_queued)" \
      "$(xattr "$work/mnt" bytes_fetched)")
    umount_affinityfs "$work/mnt"
  fi
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(json.loads(sys.argv[2]));
r.update(scenario=sys.argv[3], rtt_ms=float(sys.argv[4]), system=sys.argv[5], mode=sys.argv[6]); print(json.dumps(r))' \
    "$out" "$pre" "$scenario" "$rtt" "$system" "$mode" >>"$raw"
}

: >"$raw"
for rtt in $rtts; do
  rm -rf "$work/state"
  mkdir -p "$work/state"
  start_storaged "$bin/affinity-storaged" "$work/root" "$work/state" "$work/certs" --test-delay-ms "$rtt" \
    --test-bandwidth "$bandwidth"
  url="https://127.0.0.1:$STORAGED_PORT"
  for system in $systems; do
    for mode in timed fast; do
      run boot "$rtt" "$system" "${boots[n-1]}" 0 "$mode"
      [ "${#dbs[@]}" -ge 2 ] && run db "$rtt" "$system" "${dbs[${#dbs[@]}-1]}" "$cut" "$mode"
    done
  done
  kill "${BENCH_PIDS[-1]}" 2>/dev/null || true
  wait "${BENCH_PIDS[-1]}" 2>/dev/null || true
done

python3 "$here/prefetch_report.py" "$raw" "$chunk" "$bandwidth" "$cut" "$lead"
