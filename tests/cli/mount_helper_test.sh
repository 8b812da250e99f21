#!/usr/bin/env bash
# mount.affinityfs turns mount(8) arguments into an affinityfs command line.
# Checked without mounting: with -f (mount's "fake") / --dry-run it prints
# the command; for the real path, AFFINITYFS_BIN points at a stub that
# records its arguments.
#   mount_helper_test.sh PATH/TO/mount.affinityfs
set -uo pipefail
helper=${1:?usage: mount_helper_test.sh PATH/TO/mount.affinityfs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0 passes=0

pass() { passes=$((passes + 1)); }
fail() {
  fails=$((fails + 1))
  echo "FAIL $*"
}

# expect_cmd NAME EXPECTED ARGS...: the helper with -f prints EXPECTED.
expect_cmd() {
  local name=$1 expected=$2 got rc
  shift 2
  got=$(AFFINITYFS_BIN=affinityfs bash "$helper" "$@" -f 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ] && [ "$got" = "$expected" ]; then pass; else
    fail "$name (exit $rc)"
    echo "  expected: $expected"
    echo "  got:      $got"
  fi
}

# expect_fail NAME MESSAGE ARGS...: the helper exits 32 and says MESSAGE.
expect_fail() {
  local name=$1 message=$2 out rc
  shift 2
  out=$(AFFINITYFS_BIN=affinityfs bash "$helper" "$@" -f 2>&1)
  rc=$?
  if [ "$rc" -eq 32 ] && [[ "$out" == *"$message"* ]]; then pass; else
    fail "$name (exit $rc, expected 32 and '$message'): $out"
  fi
}

base="storage=https://st:8443,cache_dir=/var/cache/a,ca_file=/etc/a/ca.pem,cert=/etc/a/h.pem,key=/etc/a/h.key,grant=/etc/a/vm.grant"
flags="--storage https://st:8443 --cache-dir /var/cache/a --ca-file /etc/a/ca.pem --cert /etc/a/h.pem --key /etc/a/h.key --grant /etc/a/vm.grant"

# Translation.
expect_cmd basic "affinityfs /mnt/x $flags --vm vm-42 " vm-42 /mnt/x -o "$base"
expect_cmd every-own-option \
  "affinityfs /mnt/x $flags --chunk-size 64K --cache-size 10G --timeout 30 --readahead 8M --log-level debug --log-file /var/log/a.log --vm vm-7 " \
  none /mnt/x -o "$base,vm=vm-7,chunk_size=64K,cache_size=10G,timeout=30,readahead=8M,log_level=debug,log_file=/var/log/a.log"
expect_cmd fstab-line "affinityfs /mnt/x $flags --vm vm-42 -o allow_other -o ro -o noatime -o max_read=131072 " \
  vm-42 /mnt/x -o "defaults,rw,$base,_netdev,nofail,noauto,x-systemd.automount,x-systemd.idle-timeout=60,comment=vm,allow_other,ro,noatime,max_read=131072"
expect_cmd two-o-flags "affinityfs /mnt/x $flags --vm vm-42 -o allow_other " \
  vm-42 /mnt/x -o "$base" -o allow_other
expect_cmd glued-o "affinityfs /mnt/x $flags --vm vm-42 " vm-42 /mnt/x "-o$base"
expect_cmd mount-flags "affinityfs /mnt/x $flags --vm vm-42 " vm-42 /mnt/x -n -s -v -o "$base" -t fuse.affinityfs
expect_cmd value-with-equals "affinityfs /mnt/x $flags --log-file /var/log/a=b.log --vm vm-42 " \
  vm-42 /mnt/x -o "$base,log_file=/var/log/a=b.log"
expect_cmd quoting "affinityfs /mnt/my\\ vm $flags --vm vm-42 " vm-42 "/mnt/my vm" -o "$base"
got=$(AFFINITYFS_BIN=affinityfs bash "$helper" vm-42 /mnt/x -o "$base" --dry-run 2>&1)
if [ "$got" = "affinityfs /mnt/x $flags --vm vm-42 " ]; then pass; else fail "--dry-run: $got"; fi

# Refusals, each with a message that says what to do.
expect_fail unknown-option "unknown option 'bogus=1'" vm-1 /mnt/x -o "$base,bogus=1"
expect_fail suggests-underscore "unknown option 'chunk-size=64K' (did you mean 'chunk_size'?)" vm-1 /mnt/x -o "$base,chunk-size=64K"
expect_fail suggests-missing-underscore "(did you mean 'cache_size'?)" vm-1 /mnt/x -o "$base,cachesize=1G"
expect_fail high-level-fuse-option "unknown option 'uid=1000'" vm-1 /mnt/x -o "$base,uid=1000"
expect_fail missing-storage "missing option storage (as storage=...)" vm-1 /mnt/x -o "cache_dir=/c,ca_file=/a,cert=/b,key=/k"
expect_fail missing-key "missing option key" vm-1 /mnt/x -o "storage=https://s:1,cache_dir=/c,ca_file=/a,cert=/b,grant=/g"
expect_fail missing-grant "missing option grant" vm-1 /mnt/x -o "storage=https://s:1,cache_dir=/c,ca_file=/a,cert=/b,key=/k"
expect_fail empty-value "option cache_dir needs a value" vm-1 /mnt/x -o "$base,cache_dir="
expect_fail no-value "option storage needs a value" vm-1 /mnt/x -o "storage,cache_dir=/c,ca_file=/a,cert=/b,key=/k"
expect_fail twice "option cert given twice" vm-1 /mnt/x -o "$base,cert=/other.pem"
expect_fail flag-with-value "option allow_other takes no value" vm-1 /mnt/x -o "$base,allow_other=1"
expect_fail no-vm "no VM" none /mnt/x -o "$base"
expect_fail wrong-type "not 'ext4'" vm-1 /mnt/x -o "$base" -t ext4
expect_fail namespace "-N" vm-1 /mnt/x -o "$base" -N 1234
expect_fail no-args "usage: mount.affinityfs"
expect_fail one-arg "usage: mount.affinityfs" vm-1
expect_fail three-args "usage: mount.affinityfs" vm-1 /mnt/x /mnt/y -o "$base"
expect_fail unknown-flag "unexpected flag '-q'" vm-1 /mnt/x -q -o "$base"

# The real path: the stub affinityfs gets exactly these arguments; its
# failure becomes mount's 32.
stub=$work/affinityfs
cat >"$stub" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "$@" >"$(dirname "$0")/args"
exit "${STUB_EXIT:-0}"
EOF
chmod +x "$stub"
if AFFINITYFS_BIN=$stub bash "$helper" vm-42 "/mnt/my vm" -o "$base,allow_other" >/dev/null 2>&1; then
  expected=$(printf '%s\n' "/mnt/my vm" --storage https://st:8443 --cache-dir /var/cache/a --ca-file /etc/a/ca.pem \
    --cert /etc/a/h.pem --key /etc/a/h.key --grant /etc/a/vm.grant --vm vm-42 -o allow_other)
  if [ "$(cat "$work/args")" = "$expected" ]; then pass; else fail "exec: got arguments: $(cat "$work/args")"; fi
else
  fail "exec: the helper failed with a succeeding affinityfs"
fi
out=$(STUB_EXIT=1 AFFINITYFS_BIN=$stub bash "$helper" vm-42 /mnt/x -o "$base" 2>&1)
rc=$?
if [ "$rc" -eq 32 ] && [[ "$out" == *"could not mount vm-42 on /mnt/x"* ]]; then pass; else
  fail "exec-failure: exit $rc: $out"
fi
out=$(AFFINITYFS_BIN=$work/nonexistent bash "$helper" vm-42 /mnt/x -o "$base" 2>&1)
rc=$?
if [ "$rc" -eq 32 ] && [[ "$out" == *"cannot find the affinityfs binary"* ]]; then pass; else
  fail "missing-binary: exit $rc: $out"
fi

echo "mount_helper_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
