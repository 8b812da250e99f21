#!/usr/bin/env bash
# Builds a small Debian 12 guest for block-access traces, without loop mounts:
#   OUT_DIR/root.raw     raw ext4 file system (no partition table), 2 GiB (IMAGE_SIZE), sparse
#   OUT_DIR/vmlinuz      the guest's kernel (linux-image-cloud-amd64)
#   OUT_DIR/initrd.img   its initramfs
#   OUT_DIR/packages.txt the guest's package list (name version)
#   OUT_DIR/kernel-version
# Boot with: -kernel vmlinuz -initrd initrd.img -append 'root=/dev/vda rw console=ttyS0
#            affinity.workload=boot|db|services affinity.seed=N'   (bench/vm/boot.sh does this)
#
# The guest boots systemd to multi-user.target; then affinity-workload.service
# runs the workload named on the kernel command line and powers off:
#   affinity.workload=boot  nothing (boot only)
#   affinity.workload=db    ~60 s (affinity.duration=S) of SQLite point lookups, range
#                           scans and inserts on /var/lib/affinity/db.sqlite (~195 MiB,
#                           created here on the host), random with affinity.seed=N; the
#                           hot set (85% of the picks) is the same for every seed, the
#                           rest is uniform, so sessions differ but share a hot set
#   affinity.workload=services  waits (at most 180 s in all, affinity.services_wait=S)
#                           until each installed service of PostgreSQL, MariaDB,
#                           nginx and Redis is active, then one request to each
#                           (psql, mysql over the unix socket, an HTTP GET of /,
#                           redis-cli PING/SET/GET); services not installed are
#                           skipped (said on the console). Install them with
#                           EXTRA_PACKAGES.
# and prints "AFFINITY-WORKLOAD-DONE workload=W seed=N ..." on the serial console
# (AFFINITY-WORKLOAD-FAILED on an error). No affinity.workload: no workload,
# no power-off (interactive use; root has no password).
#
# Needs root (debootstrap), debootstrap, mke2fs (e2fsprogs >= 1.43), sqlite3 and
# a Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
# Idempotent: does nothing when OUT_DIR already has every output; a finished
# debootstrap (OUT_DIR/work/debootstrap.done) is reused after a
# failure later on. KEEP_ROOTFS=1 keeps OUT_DIR/work when done.
#
# Environment (the defaults make the image bench/run and tests/vm use):
#   EXTRA_PACKAGES  comma-separated packages added to debootstrap's --include
#                   (Depends only, no Recommends), e.g. postgresql,nginx;
#                   services of Debian packages are enabled as Debian ships them
#                   (debootstrap's policy-rc.d keeps them from starting in the
#                   chroot); the build checks that the ones the services
#                   workload knows are enabled, and PostgreSQL's cluster and
#                   MariaDB's data directory exist
#   DB_ROWS         orders in the SQLite database (default 1000000); 0: no database
#                   (the db workload then fails)
#   DB_CUSTOMERS    customers in it (default 50000)
#   IMAGE_SIZE      mke2fs size of root.raw (default 2G)
#   DEBIAN_MIRROR   default http://deb.debian.org/debian
#
# Usage: bench/vm/build-image.sh OUT_DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
image_size=${IMAGE_SIZE:-2G}
db_rows=${DB_ROWS:-1000000}      # orders; about 205 bytes per row with its indexes
db_customers=${DB_CUSTOMERS:-50000}
packages=systemd-sysv,udev,linux-image-cloud-amd64,initramfs-tools,sqlite3
extra_packages=${EXTRA_PACKAGES:-}
case $extra_packages in *[!a-z0-9.+,-]*) echo "build-image: EXTRA_PACKAGES: package names separated by commas" >&2; exit 2 ;; esac
extra_packages=$(echo "$extra_packages" | sed 's/,,*/,/g; s/^,//; s/,$//')
[ -z "$extra_packages" ] || packages+=,$extra_packages
case $db_rows in '' | *[!0-9]*) echo "build-image: DB_ROWS must be a number" >&2; exit 2 ;; esac

say() { echo "build-image: $*" >&2; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/root.raw" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/packages.txt" ] \
   && [ -s "$out/kernel-version" ]; then
  say "$out already has root.raw, vmlinuz and initrd.img; nothing to do"
  exit 0
fi
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap)"; exit 1; }
for tool in debootstrap mke2fs sqlite3; do
  command -v "$tool" >/dev/null || { say "missing $tool (apt-get install debootstrap e2fsprogs sqlite3)"; exit 1; }
done

work=$out/work
rootfs=$work/rootfs

# debootstrap mounts /proc and /sys inside the target while it installs; make
# sure nothing stays mounted under it whatever happens.
unmount_under() {
  local m
  # deepest first
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
}
trap 'unmount_under "$rootfs"' EXIT

t0=$(date +%s)
if [ ! -e "$work/debootstrap.done" ]; then
  unmount_under "$rootfs"
  rm -rf "$rootfs" "$work/db.done"
  mkdir -p "$rootfs"
  say "debootstrap $suite ($packages) from $mirror"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -30 "$work/debootstrap.log" >&2
    say "debootstrap failed; full log: $work/debootstrap.log"
    exit 1
  }
  unmount_under "$rootfs"
  touch "$work/debootstrap.done"
  say "debootstrap done in $(($(date +%s) - t0)) s"
fi

# ---- guest configuration (plain files, no chroot needed) ----
echo affinity-vm >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\taffinity-vm\n' >"$rootfs/etc/hosts"
printf '/dev/vda\t/\text4\tdefaults\t0\t0\n' >"$rootfs/etc/fstab"
# A fixed machine id: every boot of the image is the same "not first" boot
# (no systemd-firstboot prompts, no machine-id write).
echo 6166666e697479667374726163657631 >"$rootfs/etc/machine-id"
# root without a password, for interactive debugging on the serial console
sed -i 's/^root:[^:]*:/root::/' "$rootfs/etc/shadow"
# No apt timers or man-db updates during a trace.
rm -f "$rootfs/etc/systemd/system/timers.target.wants/"*.timer
rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
rm -rf "$rootfs"/var/lib/apt/lists/*

# ---- services of EXTRA_PACKAGES ----
# debootstrap's policy-rc.d (gone when it ends) kept them from starting in the
# chroot; their postinsts enabled them (deb-systemd-helper: the
# multi-user.target.wants links) and made their data (PostgreSQL:
# pg_createcluster; MariaDB: mysql_install_db). Check all of that.
wants=$rootfs/etc/systemd/system/multi-user.target.wants
for unit in postgresql mariadb nginx redis-server; do
  [ -e "$rootfs/lib/systemd/system/$unit.service" ] || continue
  if [ ! -L "$wants/$unit.service" ]; then
    say "$unit.service is installed but not enabled; enabling it"
    mkdir -p "$wants"
    ln -s "/lib/systemd/system/$unit.service" "$wants/$unit.service"
  fi
  say "service $unit: enabled"
done
if [ -e "$rootfs/lib/systemd/system/postgresql.service" ]; then
  clusters=$(cd "$rootfs/etc/postgresql" 2>/dev/null && find . -mindepth 2 -maxdepth 2 -type d | sed 's|^\./||' | sort | tr '\n' ' ')
  [ -n "$clusters" ] || { say "PostgreSQL has no cluster under /etc/postgresql (pg_createcluster did not run)"; exit 1; }
  say "PostgreSQL clusters: $clusters"
fi
if [ -e "$rootfs/lib/systemd/system/mariadb.service" ] && [ ! -d "$rootfs/var/lib/mysql/mysql" ]; then
  say "MariaDB's /var/lib/mysql has no system tables (mysql_install_db did not run)"
  exit 1
fi

install -d "$rootfs/usr/local/sbin" "$rootfs/var/lib/affinity"
cat >"$rootfs/usr/local/sbin/affinity-workload" <<'GUEST'
#!/bin/bash
# Runs the workload named by affinity.workload= on the kernel command line,
# prints the end marker on the console, powers off.
set -uo pipefail
workload= seed=1 duration=60 services_wait=180
for arg in $(cat /proc/cmdline); do
  case $arg in
    affinity.workload=*) workload=${arg#*=} ;;
    affinity.seed=*) seed=${arg#*=} ;;
    affinity.duration=*) duration=${arg#*=} ;;
    affinity.services_wait=*) services_wait=${arg#*=} ;;
  esac
done
[ -n "$workload" ] || exit 0
db=/var/lib/affinity/db.sqlite
up() { cut -d' ' -f1 /proc/uptime; }
echo "AFFINITY-WORKLOAD-START workload=$workload seed=$seed uptime=$(up)"

# One batch of SQL from (seed, batch): mawk's srand/rand are deterministic.
# orders ids 1..N (N from the image), customers 1..C. The hot set is the same
# for every seed: 10% of the table in blocks of 256 consecutive rows (about
# 60 KiB), scattered over the file by a fixed permutation, gets 85% of the
# picks (skewed within); the rest is uniform (cold, differs by seed). Recent
# rows (the last 2%) and 1% of the customers are hot too.
gen_batch() {
  awk -v seed="$1" -v n="$2" -v N="$3" -v C="$4" -v T0=1600000000 '
    function perm(k, m) { return (k * 2654435761) % m }
    function row(   r) {
      r = rand() < 0.85 ? int(HB * rand() ^ 2) : int(NB * rand())
      return perm(r, NB) * B + int(B * rand()) + 1
    }
    function recent() { return N - int(N / 50 * rand() ^ 2) }
    function customer() { return (rand() < 0.85 ? perm(int(C / 100 * rand() ^ 2), C) : int(C * rand())) + 1 }
    BEGIN {
      srand(seed)
      B = 256; NB = int(N / B); HB = int(NB / 10)
      print "BEGIN;"
      for (i = 0; i < n; i++) {
        x = rand()
        if (x < 0.30) {            # point lookup, hot blocks
          printf "SELECT id, customer, amount, length(note) FROM orders WHERE id=%d;\n", row()
        } else if (x < 0.55) {     # point lookup, recent rows
          printf "SELECT id, customer, amount, length(note) FROM orders WHERE id=%d;\n", recent()
        } else if (x < 0.75) {     # a customer and their latest orders (secondary index)
          c = customer()
          printf "SELECT name, balance FROM customers WHERE id=%d;\n", c
          printf "SELECT id, ts, amount FROM orders WHERE customer=%d ORDER BY ts DESC LIMIT 2;\n", c
        } else if (x < 0.85) {     # recent time range (index on ts, then the rows)
          t = T0 + 30 * recent(); w = 300 + int(rand() * 1500)
          printf "SELECT count(*), avg(amount), max(length(note)) FROM orders WHERE ts BETWEEN %d AND %d;\n", t, t + w
        } else if (x < 0.93) {     # id range scan
          a = row(); w = 20 + int(rand() * 200)
          printf "SELECT count(*), sum(amount), max(length(note)) FROM orders WHERE id BETWEEN %d AND %d;\n", a, a + w
        } else {                   # insert
          printf "INSERT INTO orders(customer, ts, amount, note) VALUES(%d, %d, %d, hex(randomblob(75)));\n", \
            customer(), T0 + 30 * N + i, int(rand() * 100000)
        }
      }
      print "COMMIT;"
    }'
}

run_db() {
  local n c end batch=0 queries=0
  n=$(sqlite3 "$db" "SELECT value FROM meta WHERE key='orders'") || return 1
  c=$(sqlite3 "$db" "SELECT value FROM meta WHERE key='customers'") || return 1
  end=$(( $(date +%s) + duration ))
  while [ "$(date +%s)" -lt "$end" ]; do
    gen_batch $((seed * 1000003 + batch)) 100 "$n" "$c" | sqlite3 -batch "$db" >/dev/null || return 1
    batch=$((batch + 1)); queries=$((queries + 100))
  done
  echo "db: seed=$seed batches=$batch statements=$queries rows_now=$(sqlite3 "$db" 'SELECT max(id) FROM orders')"
}

# The services workload: wait for each installed service (one deadline for
# all), then one real request to each. A service not installed is skipped.
installed() { [ -e "/lib/systemd/system/$1.service" ]; }
wait_active() {  # UNIT DEADLINE
  while [ "$(date +%s)" -lt "$2" ]; do
    systemctl -q is-active "$1" && return 0
    systemctl -q is-failed "$1" && break
    sleep 1
  done
  systemctl -q is-active "$1"
}
run_services() {
  local deadline=$(( $(date +%s) + services_wait )) failed=0 unit out v c
  if installed postgresql; then
    # postgresql.service is a placeholder; the server is postgresql@V-C.service.
    for d in /etc/postgresql/*/*/; do
      [ -d "$d" ] || continue
      v=$(basename "$(dirname "$d")") c=$(basename "$d") unit=postgresql@$v-$c
      if wait_active "$unit" "$deadline"; then
        echo "services: $unit active at uptime $(up)"
        if out=$(cd / && runuser -u postgres -- psql -XAt -c 'select count(*) from pg_class' 2>&1); then
          echo "services: postgresql: select count(*) from pg_class -> $out (uptime $(up))"
        else
          echo "services: postgresql: psql failed: $out"; failed=1
        fi
      else
        echo "services: $unit not active: $(systemctl is-active "$unit")"; failed=1
      fi
    done
  else
    echo "services: postgresql not installed, skipped"
  fi
  if installed mariadb; then
    if wait_active mariadb "$deadline"; then
      echo "services: mariadb active at uptime $(up)"
      if out=$("$(command -v mariadb || echo mysql)" -NB -e 'select 1' 2>&1); then
        echo "services: mariadb: select 1 -> $out (uptime $(up))"
      else
        echo "services: mariadb: mysql failed: $out"; failed=1
      fi
    else
      echo "services: mariadb not active: $(systemctl is-active mariadb)"; failed=1
    fi
  else
    echo "services: mariadb not installed, skipped"
  fi
  if installed nginx; then
    if wait_active nginx "$deadline"; then
      echo "services: nginx active at uptime $(up)"
      # bash's /dev/tcp: no curl needed in the guest
      if out=$(timeout 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 &&
                 printf "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' 2>&1) &&
         [[ $out == "HTTP/1."[01]" 200"* ]]; then
        echo "services: nginx: GET / -> ${out%%$'\r'*}, $(printf %s "$out" | wc -c) bytes (uptime $(up))"
      else
        echo "services: nginx: GET / failed: ${out%%$'\r'*}"; failed=1
      fi
    else
      echo "services: nginx not active: $(systemctl is-active nginx)"; failed=1
    fi
  else
    echo "services: nginx not installed, skipped"
  fi
  if installed redis-server; then
    if wait_active redis-server "$deadline"; then
      echo "services: redis-server active at uptime $(up)"
      if out=$(redis-cli ping 2>&1) && [ "$out" = PONG ] &&
         redis-cli set affinity:seed "$seed" >/dev/null 2>&1 &&
         [ "$(redis-cli get affinity:seed 2>&1)" = "$seed" ]; then
        echo "services: redis-server: PING -> $out, SET/GET affinity:seed -> $seed (uptime $(up))"
      else
        echo "services: redis-server: redis-cli failed: $out"; failed=1
      fi
    else
      echo "services: redis-server not active: $(systemctl is-active redis-server)"; failed=1
    fi
  else
    echo "services: redis-server not installed, skipped"
  fi
  return "$failed"
}

status=ok
case $workload in
  boot) ;;
  db) run_db || status=error ;;
  services) run_services || status=error ;;
  *) echo "unknown affinity.workload=$workload"; status=error ;;
esac
if [ "$status" = ok ]; then
  echo "AFFINITY-WORKLOAD-DONE workload=$workload seed=$seed uptime=$(up)"
else
  echo "AFFINITY-WORKLOAD-FAILED workload=$workload seed=$seed uptime=$(up)"
fi
sync
systemctl --no-block poweroff
GUEST
chmod 755 "$rootfs/usr/local/sbin/affinity-workload"

cat >"$rootfs/etc/systemd/system/affinity-workload.service" <<'UNIT'
[Unit]
Description=affinityfs trace workload (affinity.workload= on the kernel command line)
After=multi-user.target
ConditionKernelCommandLine=affinity.workload

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/affinity-workload
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/affinity-workload.service \
  "$rootfs/etc/systemd/system/multi-user.target.wants/affinity-workload.service"

# ---- the database, built on the host ----
db=$rootfs/var/lib/affinity/db.sqlite
if [ "$db_rows" = 0 ]; then
  rm -f "$db" "$db-wal" "$db-shm" "$db-journal" "$work/db.done"
  say "DB_ROWS=0: no SQLite database"
elif [ ! -e "$work/db.done" ]; then
  say "creating the SQLite database ($db_rows orders, $db_customers customers)"
  rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
  sqlite3 "$db" >/dev/null <<SQL
PRAGMA page_size=4096;
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, region INTEGER NOT NULL, balance INTEGER NOT NULL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, ts INTEGER NOT NULL,
                    amount INTEGER NOT NULL, note TEXT NOT NULL);
BEGIN;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $db_customers)
INSERT INTO customers SELECT i, 'customer-' || i || '-' || hex(randomblob(8)), i % 17, abs(random() % 1000000) FROM k;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $db_rows)
INSERT INTO orders SELECT i, 1 + abs(random() % $db_customers), 1600000000 + 30 * i + abs(random() % 30),
                          abs(random() % 100000), hex(randomblob(75)) FROM k;
COMMIT;
CREATE INDEX orders_customer ON orders(customer, ts);
CREATE INDEX orders_ts ON orders(ts);
INSERT INTO meta VALUES('orders', $db_rows), ('customers', $db_customers);
PRAGMA journal_mode=WAL;
SQL
  touch "$work/db.done"
fi
[ "$db_rows" = 0 ] || say "database: $(($(stat -c %s "$db") >> 20)) MiB"

# ---- kernel, initrd, package list ----
kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$rootfs/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then
  say "no kernel or initrd under $rootfs/boot"
  exit 1
fi
basename "$kernel" | sed 's/^vmlinuz-//' >"$out/kernel-version.tmp"
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version}\n' | sort >"$out/packages.txt.tmp"

# ---- the file system image: mke2fs copies the tree in (no mount) ----
say "mke2fs -t ext4 -d (${image_size})"
rm -f "$out/root.raw.tmp"
mke2fs -q -F -t ext4 -L affinity-root -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
  -d "$rootfs" "$out/root.raw.tmp" "$image_size" >/dev/null
e2fsck -fn "$out/root.raw.tmp" >/dev/null 2>&1 || { say "e2fsck finds errors in the new image"; exit 1; }

cp "$kernel" "$out/vmlinuz.tmp"
cp "$initrd" "$out/initrd.img.tmp"
chmod 644 "$out/vmlinuz.tmp" "$out/initrd.img.tmp" "$out/root.raw.tmp"
for f in vmlinuz initrd.img kernel-version packages.txt root.raw; do
  mv "$out/$f.tmp" "$out/$f"
done
[ "${KEEP_ROOTFS:-0}" = 1 ] || { unmount_under "$rootfs"; rm -rf "$work"; }
say "done in $(($(date +%s) - t0)) s: $out/root.raw ($(du -m "$out/root.raw" | cut -f1) MiB allocated), kernel $(cat "$out/kernel-version")"
