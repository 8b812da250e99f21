#!/usr/bin/env bash
# mount.affinityfs translates mount(8) options into affinityfs flags (checked with -f, mount's "fake").
set -uo pipefail
helper=$1
fails=0 passes=0
expect_cmd() {  # expect_cmd NAME EXPECTED ARGS...
  local name=$1 expected=$2
  shift 2
  local got
  got=$(AFFINITYFS_BIN=affinityfs "$helper" "$@" -f 2>&1)
  if [ "$got" = "$expected" ]; then passes=$((passes + 1)); else
    fails=$((fails + 1)); echo "FAIL $name"; echo "  expected: $expected"; echo "  got:      $got"; fi
}
expect_fail() {  # expect_fail NAME MESSAGE ARGS...
  local name=$1 message=$2 out rc
  shift 2
  out=$(AFFINITYFS_BIN=affinityfs "$helper" "$@" -f 2>&1); rc=$?
  if [ $rc -ne 0 ] && [[ "$out" == *"$message"* ]]; then passes=$((passes + 1)); else
    fails=$((fails + 1)); echo "FAIL $name (rc=$rc): $out"; fi
}
base="storage=https://st:8443,cache_dir=/var/cache/a,ca_file=/etc/a/ca.pem,cert=/etc/a/h.pem,key=/etc/a/h.key"
expect_cmd basic "affinityfs /mnt/x --storage https://st:8443 --cache-dir /var/cache/a --ca-file /etc/a/ca.pem --cert /etc/a/h.pem --key /etc/a/h.key --vm vm-42 " \
  vm-42 /mnt/x -o "$base"
expect_cmd fstab-extras "affinityfs /mnt/x --storage https://st:8443 --cache-dir /var/cache/a --ca-file /etc/a/ca.pem --cert /etc/a/h.pem --key /etc/a/h.key --chunk-size 64K --cache-size 10G --vm vm-7 -o allow_other " \
  none /mnt/x -o "$base,vm=vm-7,chunk_size=64K,cache_size=10G,defaults,_netdev,nofail,x-systemd.automount,allow_other"
expect_fail unknown-option "unknown option 'bogus=1'" vm-1 /mnt/x -o "$base,bogus=1"
expect_fail missing-storage "missing option storage" vm-1 /mnt/x -o "cache_dir=/c,ca_file=/a,cert=/b,key=/k"
expect_fail no-vm "no VM" none /mnt/x -o "$base"
expect_fail usage "usage"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
