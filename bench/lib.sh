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

# gen_certs DIR: CA, server (127.0.0.1) and client certificates, EC P-256;
# a separate admin CA and admin certificate; the Ed25519 grant-signing key.
gen_certs() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-admin-ca \
      -keyout admin-ca.key -out admin-ca.pem 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-admin \
      -keyout admin.key -out admin.pem -CA admin-ca.pem -CAkey admin-ca.key \
      -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=clientAuth 2>/dev/null
    openssl genpkey -algorithm ed25519 -out grant.key 2>/dev/null
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
    --admin-ca "$certs/admin-ca.pem" --grant-key "$certs/grant.key" --max-grant-ttl 86400 \
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

# issue_grant URL VM CERTS OUT: a standing read+prefetch grant for the client
# certificate, asked of the storage host with the admin certificate.
issue_grant() {
  local url=$1 vm=$2 certs=$3 out=$4 holder
  holder=$(openssl x509 -in "$certs/client.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
  curl -sf --cacert "$certs/ca.pem" --cert "$certs/admin.pem" --key "$certs/admin.key" -X POST \
    -d "{\"holder\":\"$holder\",\"vm\":\"$vm\",\"ops\":[\"read\",\"prefetch\"],\"ttl\":86400}" \
    "$url/v1/grants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["grant"])' >"$out"
}

# mount_affinityfs BIN MNT URL VM CACHE CERTS [extra args...]
mount_affinityfs() {
  local bin=$1 mnt=$2 url=$3 vm=$4 cache=$5 certs=$6
  shift 6
  mkdir -p "$mnt"
  [ -s "$cache.grant" ] || issue_grant "$url" "$vm" "$certs" "$cache.grant"
  "$bin" "$mnt" --storage "$url" --vm "$vm" --cache-dir "$cache" --ca-file "$certs/ca.pem" \
    --cert "$certs/client.pem" --key "$certs/client.key" --grant "$cache.grant" --log-file "$cache.log" "$@"
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

# wait_exit PID SECONDS: 0 once PID (a child of this shell) has exited, 1 if
# it still runs after SECONDS. Does not reap it: `wait PID` for its status.
wait_exit() {
  local pid=$1 deadline=$(($(date +%s) + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
  return 0
}

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
