#!/usr/bin/env bash
# Read-path benchmark (issue 2). Ratios measured in one run on this machine:
#   cached sequential 1 MiB reads: mount vs the cache data file directly
#   cached random 4 KiB reads:     mount vs the cache data file directly
#   cold sequential reads:         mount vs curl of the same bytes, same server
# Usage: bench/read_path.sh [BUILD_DIR] [IMAGE_MiB] [RUNS]   (results on stdout, Markdown)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
build=${1:-$here/../build}
size_mib=${2:-512}
runs=${3:-3}
bin=$(cd "$build/bin" && pwd)
work=$(mktemp -d /tmp/affinity-bench.XXXXXX)
trap 'bench_cleanup; rm -rf "$work"' EXIT

gen_certs "$work/certs"
mkdir -p "$work/root/vm-1" "$work/state"
head -c "${size_mib}M" /dev/urandom >"$work/root/vm-1/disk.raw"
start_storaged "$bin/affinity-storaged" "$work/root" "$work/state" "$work/certs"
url="https://127.0.0.1:$STORAGED_PORT"
bytes=$((size_mib << 20))
issue_grant "$url" vm-1 "$work/certs" "$work/grant"

cold_curl=() cold_mount=()
for r in $(seq 1 "$runs"); do
  t0=$(now)
  curl -sf --cacert "$work/certs/ca.pem" --cert "$work/certs/client.pem" --key "$work/certs/client.key" \
    -H "Authorization: Bearer $(cat "$work/grant")" -o /dev/null "$url/v1/vms/vm-1/images/disk.raw"
  t1=$(now)
  cold_curl+=("$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)")

  rm -rf "$work/cache" "$work/cache.grant"
  mount_affinityfs "$bin/affinityfs" "$work/mnt" "$url" vm-1 "$work/cache" "$work/certs"
  t0=$(now)
  dd if="$work/mnt/disk.raw" of=/dev/null bs=1M status=none
  t1=$(now)
  cold_mount+=("$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)")
  [ "$r" = "$runs" ] || umount_affinityfs "$work/mnt"
done

# Fully cached now. Before every job the kernel page cache of both the FUSE
# file and the cache data file is dropped, so both sides read from disk.
data="$work/cache/vm-1/data/disk.raw"
seq_mount=() seq_direct=() rnd_mount=() rnd_direct=()
for r in $(seq 1 "$runs"); do
  drop_cache "$work/mnt/disk.raw"; drop_cache "$data"
  seq_mount+=("$(fio_run "$work/mnt/disk.raw" read 1M "${size_mib}M" | cut -d' ' -f1)")
  drop_cache "$data"
  seq_direct+=("$(fio_run "$data" read 1M "${size_mib}M" | cut -d' ' -f1)")
  drop_cache "$work/mnt/disk.raw"; drop_cache "$data"
  rnd_mount+=("$(fio_run "$work/mnt/disk.raw" randread 4k "${size_mib}M" "--number_ios=20000" | cut -d' ' -f2)")
  drop_cache "$data"
  rnd_direct+=("$(fio_run "$data" randread 4k "${size_mib}M" "--number_ios=20000" | cut -d' ' -f2)")
done
umount_affinityfs "$work/mnt"

m() { median "$@"; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
cc=$(m "${cold_curl[@]}") cm=$(m "${cold_mount[@]}")
sm=$(m "${seq_mount[@]}") sd=$(m "${seq_direct[@]}")
rm_=$(m "${rnd_mount[@]}") rd=$(m "${rnd_direct[@]}")
cat <<OUT
| case (${size_mib} MiB image, median of $runs) | affinityfs | baseline | ratio | goal |
|---|---|---|---|---|
| cold sequential, MB/s (baseline: curl of the whole image) | $(printf %.0f "$cm") | $(printf %.0f "$cc") | $(ratio "$cm" "$cc") | >= 0.9 |
| cached sequential 1 MiB, MB/s (baseline: cache file directly) | $(printf %.0f "$sm") | $(printf %.0f "$sd") | $(ratio "$sm" "$sd") | >= 0.9 |
| cached random 4 KiB, IOPS (baseline: cache file directly) | $(printf %.0f "$rm_") | $(printf %.0f "$rd") | $(ratio "$rm_" "$rd") | >= 0.5 |
OUT
