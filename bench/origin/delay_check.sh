#!/bin/bash
# How accurate is nginx.sh's emulated delay? For each DELAY_MS (default 0 1 2):
# a fresh origin, then N (default 200) sequential 4 KiB range GETs by one curl
# process over one keep-alive TLS connection (a warm-up request first, which
# pays the handshake and is not counted). Prints median and p99 of curl's
# per-request time_total and the added delay vs the first DELAY listed.
#
#   delay_check.sh [N] [DELAY_MS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
n=${1:-200}
shift || true
delays=("$@")
[ ${#delays[@]} -gt 0 ] || delays=(0 1 2)

tmp=$(mktemp -d /tmp/delay_check.XXXXXX)
cleanup() {
  local d
  for d in "$tmp"/o-*; do [ -d "$d" ] && "$here/nginx.sh" stop "$d"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
gen_certs "$tmp/certs"
mkdir -p "$tmp/root"
head -c 16M /dev/urandom >"$tmp/root/img.raw"

base_med=""
printf '%-9s %5s %12s %12s %14s %14s\n' delay_ms n median_ms p99_ms added_median added_p99
for d in "${delays[@]}"; do
  url=$("$here/nginx.sh" start "$tmp/o-$d" "$tmp/root" "$d" "$tmp/certs" 2>/dev/null | tail -1)
    args=(-o /dev/null "$url/img.raw?warmup")
  for ((i = 1; i <= n; i++)); do args+=(-o /dev/null "$url/img.raw?n=$i"); done
  times=$(curl -s --cacert "$tmp/certs/ca.pem" -r 0-4095 -w '%{time_total}\n' "${args[@]}" | tail -n +2)
  stats=$(echo "$times" | sort -g | awk '{a[NR] = $1 * 1000} END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    i = int(0.99 * NR + 0.999999); if (i < 1) i = 1
    printf "%d %.3f %.3f\n", NR, m, a[i]}')
  read -r cnt med p99 <<<"$stats"
  [ -n "$base_med" ] || { base_med=$med; base_p99=$p99; }
  printf '%-9s %5s %12s %12s %14.3f %14.3f\n' "$d" "$cnt" "$med" "$p99" \
    "$(awk -v a="$med" -v b="$base_med" 'BEGIN {print a - b}')" \
    "$(awk -v a="$p99" -v b="$base_p99" 'BEGIN {print a - b}')"
  "$here/nginx.sh" stop "$tmp/o-$d"
done
