#!/bin/bash
# What one miss costs at each origin, without a file system in the way: N
# (default 300) random chunk-aligned range GETs of SIZE bytes (default 256K,
# affinityfs's chunk) by one curl process over one keep-alive TLS connection,
# at 0 ms delay, against affinity-storaged (with a grant, as affinityfs asks)
# and against the peers' nginx origin, the same offsets in the same order.
# Prints median and p90 of curl's time_total per request for each.
#
# The difference is the storage host's work per reply that nginx does not do
# (the SHA-256 Content-Digest over the body, the grant check, served-block
# tracking); docs/benchmarks.md, "Reading the numbers", uses it.
#
#   miss_cost.sh BIN_DIR IMAGE [N] [SIZE]     (BIN_DIR: affinity-storaged's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 BIN_DIR IMAGE [N] [SIZE]" >&2; exit 2; }
bin=$1 image=$2 n=${3:-300}
size=$(numfmt --from=iec "${4:-256K}")
[ -x "$bin/affinity-storaged" ] || { echo "miss_cost.sh: no affinity-storaged in $bin" >&2; exit 1; }
[ -f "$image" ] || { echo "miss_cost.sh: no image at $image" >&2; exit 1; }

tmp=$(mktemp -d /tmp/miss_cost.XXXXXX)
cleanup() {
  [ -d "$tmp/o" ] && "$here/nginx.sh" stop "$tmp/o" >/dev/null 2>&1
  bench_cleanup
  rm -rf "$tmp"
}
trap cleanup EXIT
gen_certs "$tmp/certs"
mkdir -p "$tmp/root/vm-1" "$tmp/www" "$tmp/state" "$tmp/o"
ln "$image" "$tmp/root/vm-1/root.raw" 2>/dev/null || ln -s "$(realpath "$image")" "$tmp/root/vm-1/root.raw"
ln "$image" "$tmp/www/root.raw" 2>/dev/null || ln -s "$(realpath "$image")" "$tmp/www/root.raw"
start_storaged "$bin/affinity-storaged" "$tmp/root" "$tmp/state" "$tmp/certs" --test-delay-ms 0
storaged_url="https://127.0.0.1:$STORAGED_PORT"
issue_grant "$storaged_url" vm-1 "$tmp/certs" "$tmp/grant"
nginx_url=$("$here/nginx.sh" start "$tmp/o" "$tmp/www" 0 "$tmp/certs" | tail -n 1)

chunks=$(($(stat -L -c %s "$image") / size))
ranges=()
RANDOM=42
for _ in $(seq 1 "$n"); do
  off=$((((RANDOM << 15) | RANDOM) % chunks * size))
  ranges+=("$off-$((off + size - 1))")
done

# times URL [curl args...]: one curl, a warm-up request (the handshake), then
# the N ranges; prints "median p90" in ms.
times() {
  local url=$1 args=() r
  shift
  # --next: every request has its own range (options otherwise apply to all
  # URLs); the connection is still reused.
  args=(-s "$@" -r 0-0 -o /dev/null -w '%{http_code}\n' "$url")
  for r in "${ranges[@]}"; do
    args+=(--next -s "$@" -r "$r" -o /dev/null -w '%{http_code} %{time_total}\n' "$url")
  done
  curl "${args[@]}" | tail -n +2 >"$tmp/times"
  if awk '$1 != 206 { bad = 1 } END { exit !bad }' "$tmp/times"; then
    echo "miss_cost.sh: some replies from $url were not 206" >&2
    return 1
  fi
  awk '{ print $2 * 1000 }' "$tmp/times" | sort -g |
    awk '{ t[NR] = $1 } END { printf "%.3f %.3f\n", t[int((NR + 1) / 2)], t[int(NR * 0.9)] }'
}

printf '%-18s %5s %8s %10s %10s\n' origin n size median_ms p90_ms
s=$(times "$storaged_url/v1/vms/vm-1/images/root.raw" --cacert "$tmp/certs/ca.pem" \
  --cert "$tmp/certs/client.pem" --key "$tmp/certs/client.key" -H "Authorization: Bearer $(cat "$tmp/grant")")
# shellcheck disable=SC2086  # $s is "median p90"
printf '%-18s %5s %8s %10s %10s\n' affinity-storaged "$n" "$size" $s
s=$(times "$nginx_url/root.raw" --cacert "$tmp/certs/ca.pem")
# shellcheck disable=SC2086
printf '%-18s %5s %8s %10s %10s\n' nginx "$n" "$size" $s
