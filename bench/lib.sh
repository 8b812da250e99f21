# Shared helpers for bench scripts (sourced). Everything started is recorded
# by PID and stopped on exit; nothing is killed by name.
set -euo pipefail

BENCH_PIDS=()
BENCH_MOUNTS=()

bench_cleanup() {
  local m p
  for m in "${BENCH_MOUNTS[@]:-}"; do
    [ -n "$m" ] && grep -q " $m " /proc/mounts && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m"; }
  done
  for p in "${BENCH_PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

# gen_certs DIR: CA, server (127.0.0.1) and client certificates, EC P-256.
gen_certs() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
      -keyout ca.key -out ca.pem 2>/dev/null
    for who in server client; do
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
        -keyout "$who.key" -out "$who.csr" 2>/dev/null
      if [ "$who" = server ]; then
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext.cnf
      else
        printf 'extendedKeyUsage=clientAuth\n' >ext.cnf
      fi
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out "$who.pem" 2>/dev/null
    done
  )
}

# start_storaged BIN ROOT STATE CERTS [extra args...]: sets STORAGED_PORT.
start_storaged() {
  local bin=$1 root=$2 state=$3 certs=$4
  shift 4
  local ready="$state/ready"
  rm -f "$ready"
  "$bin" --root "$root" --listen 127.0.0.1:0 --ready-file "$ready" --state "$state" \
    --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --client-ca "$certs/ca.pem" \
    --log-level warn "$@" >"$state/storaged.log" 2>&1 &
  BENCH_PIDS+=($!)
  local i
  for i in $(seq 1 200); do
    [ -s "$ready" ] && break
    sleep 0.05
  done
  [ -s "$ready" ] || { echo "storaged did not start:" >&2; cat "$state/storaged.log" >&2; return 1; }
  STORAGED_PORT=$(cat "$ready")
}

# mount_affinityfs BIN MNT URL VM CACHE CERTS [extra args...]
mount_affinityfs() {
  local bin=$1 mnt=$2 url=$3 vm=$4 cache=$5 certs=$6
  shift 6
  mkdir -p "$mnt"
  "$bin" "$mnt" --storage "$url" --vm "$vm" --cache-dir "$cache" --ca-file "$certs/ca.pem" \
    --cert "$certs/client.pem" --key "$certs/client.key" --log-file "$cache.log" "$@"
  BENCH_MOUNTS+=("$mnt")
}

umount_affinityfs() {
  local mnt=$1 i
  fusermount3 -u "$mnt"
  # The daemon exits after the unmount; wait until its cache lock is free.
  for i in $(seq 1 100); do
    pgrep -f "affinityfs $mnt " >/dev/null || break
    sleep 0.05
  done
}

now() { date +%s.%N; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# drop_cache FILE: drop FILE's pages from the kernel page cache (posix_fadvise DONTNEED).
drop_cache() { dd if="$1" iflag=nocache count=0 status=none; }

# fio_bw FILE RW BS [SIZE]: prints MB/s (psync, one job, page cache dropped first, no fadvise hint).
fio_run() {
  local file=$1 rw=$2 bs=$3 size=$4 extra=${5:-}
  # shellcheck disable=SC2086
  fio --name=b --filename="$file" --rw="$rw" --bs="$bs" --size="$size" --ioengine=psync --invalidate=1 \
    --fadvise_hint=0 --randseed=42 --output-format=json $extra | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["read"]
print("%.1f %.1f %d" % (j["bw_bytes"] / 1e6, j["iops"], j["clat_ns"]["percentile"]["99.000000"] / 1000))'
}
