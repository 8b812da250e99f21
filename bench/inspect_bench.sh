#!/usr/bin/env bash
# Guest inspection benchmark (issue 6): how long `affinityctl inspect` takes
# on a 20 GiB ext4 image holding a realistic tree, raw and qcow2, with the
# image's pages in the host page cache (warm) and dropped for the image file
# only (cold: dd iflag=nocache, no global drop_caches).
# Usage: bench/inspect_bench.sh [BUILD_DIR] [RUNS]   (results on stdout, Markdown)
# The tree: AFFINITY_INSPECT_TREE (default "/usr/share /usr/include /usr/bin"),
# hard-linked into a staging directory (copied if on another file system).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
runs=${2:-3}
ctl=$(cd "$build/bin" && pwd)/affinityctl
work=$(mktemp -d "${TMPDIR:-/var/tmp}/affinity-inspect-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

stage=$work/root
for d in ${AFFINITY_INSPECT_TREE:-/usr/share /usr/include /usr/bin}; do
  mkdir -p "$stage$(dirname "$d")"
  cp -al "$d" "$stage$d" 2>/dev/null || cp -a "$d" "$stage$d"
done
t0=$(date +%s.%N)
mke2fs -q -F -t ext4 -b 4096 -d "$stage" "$work/root.raw" 20G
t1=$(date +%s.%N)
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$work/root.qcow2"
t2=$(date +%s.%N)
echo "image: 20 GiB ext4, tree ${AFFINITY_INSPECT_TREE:-/usr/share /usr/include /usr/bin}"
echo "made in $(printf '%.0f' "$(echo "$t1 - $t0" | bc)") s (mke2fs -d), qcow2 in $(printf '%.0f' "$(echo "$t2 - $t1" | bc)") s;" \
  "allocated: raw $(du -k "$work/root.raw" | cut -f1) KiB, qcow2 $(du -k "$work/root.qcow2" | cut -f1) KiB"
echo
echo "| image | cache | files | data mapped | wall s (median of $runs) | max RSS MiB |"
echo "|---|---|---|---|---|---|"
for img in root.raw root.qcow2; do
  for cache in cold warm; do
    walls=() rss=0 out=
    for _ in $(seq 1 "$runs"); do
      [ "$cache" = cold ] && dd if="$work/$img" iflag=nocache count=0 status=none
      out=$( { /usr/bin/time -f '%e %M' "$ctl" inspect --json "$work/$img" >"$work/out.json"; } 2>&1 | tail -n 1)
      walls+=("${out% *}")
      rss=$(( ${out#* } > rss ? ${out#* } : rss ))
    done
    median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    files=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["files"], j["mapped_bytes"] >> 20)' "$work/out.json")
    echo "| $img | $cache | ${files% *} | ${files#* } MiB | $median | $((rss / 1024)) |"
  done
done
