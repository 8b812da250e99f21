#!/usr/bin/env bash
# Write-path benchmark (issue 5, docs/writes.md). fio against a file on the
# mount (this host owns the VM) and, as the baseline in the same run, against
# a plain file in the same directory tree (same disk), with the same job:
#   seqwrite 1 MiB, randwrite 64 KiB and 4 KiB (O_DIRECT, psync, one job),
#   randwrite 4 KiB with an fdatasync after every write (what a guest's
#   flush-heavy database does: each one waits for the storage host),
#   randwrite 4 KiB into chunks not cached yet (each first write of a chunk
#   fetches it: docs/writes.md, "Chunks, not sub-chunk ranges").
# The storage host runs on loopback with no added delay: the ratios show the
# cost of the cache's local durability (fdatasync + index commit per write)
# and, for the fdatasync row, of the PUT round trip.
# Usage: bench/write_path.sh [BUILD_DIR] [IMAGE_MiB] [SECONDS_PER_JOB]   (Markdown on stdout)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
build=${1:-$here/../build}
size_mib=${2:-256}
seconds=${3:-8}
bin=$(cd "$build/bin" && pwd)
work=$(mktemp -d /var/tmp/affinity-bench.XXXXXX)
trap 'bench_cleanup; rm -rf "$work"' EXIT

gen_certs "$work/certs"
mkdir -p "$work/root/vm-1" "$work/state"
head -c "${size_mib}M" /dev/urandom >"$work/root/vm-1/disk.raw"
cp "$work/root/vm-1/disk.raw" "$work/local.raw"
start_storaged "$bin/affinity-storaged" "$work/root" "$work/state" "$work/certs"
url="https://127.0.0.1:$STORAGED_PORT"

# This host owns vm-1: the owner's grant (read, prefetch, write).
admin=(curl -sf --cacert "$work/certs/ca.pem" --cert "$work/certs/admin.pem" --key "$work/certs/admin.key")
holder=$(openssl x509 -in "$work/certs/client.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
"${admin[@]}" -X PUT -d "{\"holder\":\"$holder\"}" "$url/v1/vms/vm-1/owner" >/dev/null
"${admin[@]}" -X POST -d "{\"holder\":\"$holder\",\"vm\":\"vm-1\",\"ops\":[\"read\",\"prefetch\",\"write\"],\"ttl\":86400}" \
  "$url/v1/grants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["grant"])' >"$work/cache.grant"
mount_affinityfs "$bin/affinityfs" "$work/mnt" "$url" vm-1 "$work/cache" "$work/certs"

# fio_write FILE RW BS EXTRA...: prints "MB/s IOPS p99_us"
fio_write() {
  local file=$1 rw=$2 bs=$3
  shift 3
  fio --name=w --filename="$file" --rw="$rw" --bs="$bs" --size="${size_mib}M" --ioengine=psync --direct=1 \
    --fadvise_hint=0 --randseed=42 --runtime="$seconds" --time_based=1 --output-format=json "$@" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["write"]
print("%.1f %.0f %d" % (j["bw_bytes"] / 1e6, j["iops"], j["clat_ns"]["percentile"]["99.000000"] / 1000))'
}

echo "| job | local file MB/s (IOPS, p99 µs) | affinityfs MB/s (IOPS, p99 µs) | affinityfs / local |"
echo "|---|---|---|---|"
row() {
  local name=$1 rw=$2 bs=$3
  shift 3
  local l m
  read -r lbw liops lp99 <<<"$(fio_write "$work/local.raw" "$rw" "$bs" "$@")"
  read -r mbw miops mp99 <<<"$(fio_write "$work/mnt/disk.raw" "$rw" "$bs" "$@")"
  l=$lbw m=$mbw
  printf '| %s | %s (%s, %s) | %s (%s, %s) | %.2f |\n' "$name" "$lbw" "$liops" "$lp99" "$mbw" "$miops" "$mp99" \
    "$(echo "$m / $l" | bc -l)"
}
# Uncached first: every 4 KiB write lands in a chunk the cache does not hold yet.
row "randwrite 4 KiB, chunks not cached" randwrite 4k
cat "$work/mnt/disk.raw" >/dev/null  # the rest of the image is cached from here on
row "seqwrite 1 MiB" write 1m
row "randwrite 64 KiB" randwrite 64k
row "randwrite 4 KiB" randwrite 4k
row "randwrite 4 KiB + fdatasync each" randwrite 4k --fdatasync=1
echo
echo "dirty bytes left: $(getfattr --only-values -n user.affinity.dirty_bytes "$work/mnt/disk.raw"); write-back PUTs: $(getfattr --only-values -n user.affinity.writeback_requests "$work/mnt/disk.raw") ($(getfattr --only-values -n user.affinity.writeback_bytes "$work/mnt/disk.raw") bytes)"
umount_affinityfs "$work/mnt"
