#!/usr/bin/env bash
# Boots the guest of bench/vm/build-image.sh under QEMU TCG (never KVM) with
# its disk read from IMAGE_PATH (e.g. root.raw on an affinityfs mount), runs
# one workload and waits for the guest to power off.
#
# By default IMAGE_PATH is never written (read traces, a read-only mount):
# the VM runs on a qcow2 overlay on local disk whose backing file is
# IMAGE_PATH: reads of blocks the guest has not written go to IMAGE_PATH (what
# affinityfs records), writes stay in the overlay, deleted afterwards. The
# overlay has 2 KiB subclusters (extended_l2), so the guest's 4 KiB-aligned
# writes never make QEMU read the rest of a cluster from the backing file (no
# copy-on-write reads in a trace).
#
# BOOT_DIRECT=1 instead runs the VM on IMAGE_PATH itself, read-write, with no
# overlay (a writable affinityfs mount, or a plain file): the guest's writes
# go to IMAGE_PATH through QEMU's cache mode BOOT_CACHE.
#
# Usage: bench/vm/boot.sh IMAGE_PATH KERNEL INITRD WORKLOAD SEED [extra qemu args...]
#   WORKLOAD: boot | db (see build-image.sh)
# Environment:
#   BOOT_TIMEOUT   seconds before QEMU is stopped (default 300)
#   BOOT_LOG       serial console log (default ./boot-WORKLOAD-SEED.log)
#   BOOT_WORKDIR   where the overlay goes (default: a new directory under TMPDIR, removed after)
#   BOOT_MEM       guest memory in MiB (default 1024)
#   BOOT_APPEND    extra kernel command line (e.g. affinity.duration=30)
#   BOOT_DIRECT    1: the disk is IMAGE_PATH, read-write, raw (default 0: overlay)
#   BOOT_CACHE     QEMU cache mode with BOOT_DIRECT=1: writeback | none (O_DIRECT) |
#                  writethrough | directsync (default writeback)
# Exits 0 only if the guest printed its end marker (AFFINITY-WORKLOAD-DONE).
set -euo pipefail

if [ $# -lt 5 ]; then
  echo "usage: $0 IMAGE_PATH KERNEL INITRD WORKLOAD SEED [extra qemu args...]" >&2
  exit 2
fi
image=$1 kernel=$2 initrd=$3 workload=$4 seed=$5
shift 5
timeout_s=${BOOT_TIMEOUT:-300}
log=${BOOT_LOG:-$PWD/boot-$workload-$seed.log}
mem=${BOOT_MEM:-1024}
direct=${BOOT_DIRECT:-0}
cache=${BOOT_CACHE:-writeback}

for f in "$image" "$kernel" "$initrd"; do
  [ -r "$f" ] || { echo "boot.sh: cannot read $f" >&2; exit 2; }
done
case $seed in '' | *[!0-9]*) echo "boot.sh: SEED must be a number" >&2; exit 2 ;; esac
case $direct in 0 | 1) ;; *) echo "boot.sh: BOOT_DIRECT must be 0 or 1" >&2; exit 2 ;; esac
case $cache in writeback | none | writethrough | directsync) ;;
  *) echo "boot.sh: BOOT_CACHE must be writeback, none, writethrough or directsync" >&2; exit 2 ;;
esac
image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")

if [ "$direct" = 1 ]; then
  drive="file=$image,format=raw,if=virtio,cache=$cache"
else
  if [ -n "${BOOT_WORKDIR:-}" ]; then
    work=$BOOT_WORKDIR
    mkdir -p "$work"
    trap 'rm -f "$work/overlay.qcow2"' EXIT
  else
    work=$(mktemp -d "${TMPDIR:-/tmp}/affinity-boot.XXXXXX")
    trap 'rm -rf "$work"' EXIT
  fi
  qemu-img create -q -f qcow2 -F raw -b "$image" -o cluster_size=64k,extended_l2=on "$work/overlay.qcow2"
  drive="file=$work/overlay.qcow2,format=qcow2,if=virtio,cache=none"
fi

append="root=/dev/vda rw console=ttyS0 panic=-1 systemd.firstboot=off net.ifnames=0"
append+=" affinity.workload=$workload affinity.seed=$seed ${BOOT_APPEND:-}"

t0=$(date +%s.%N)
rc=0
# In the background so that a TERM/INT to this script stops QEMU too
# (timeout passes the signal on).
timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -m "$mem" -smp 1 -nographic -no-reboot -nic none \
  -kernel "$kernel" -initrd "$initrd" -append "$append" \
  -drive "$drive" \
  "$@" </dev/null >"$log" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null; exit 143' INT TERM
wait "$qpid" || rc=$?
trap - INT TERM
t1=$(date +%s.%N)
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

marker="AFFINITY-WORKLOAD-DONE workload=$workload seed=$seed"
if grep -q "$marker" "$log"; then
  [ "$rc" = 0 ] || echo "boot.sh: note: QEMU exited with $rc after the end marker" >&2
  echo "boot.sh: $workload seed=$seed done in $elapsed s ($(grep -a -o "$marker uptime=[0-9.]*" "$log" | tail -1 | sed 's/.*uptime=/guest uptime /') s); log $log" >&2
  exit 0
fi
if [ "$rc" = 124 ]; then
  echo "boot.sh: $workload seed=$seed: no end marker after ${timeout_s} s (timed out); log $log" >&2
else
  echo "boot.sh: $workload seed=$seed: QEMU exited ($rc) after $elapsed s without the end marker; log $log" >&2
fi
tail -20 "$log" >&2
exit 1
