#!/bin/bash
# Peer: nbdkit's curl plugin with the readahead and cache filters, exposed as
# a file by nbdfuse (Debian nbdkit 1.32, libnbd-bin 1.14).
#
#   nbdkit.sh start WORK URL CA_FILE   last stdout line: WORK/mnt/nbd
#   nbdkit.sh stop WORK
#
# Configuration:
#   TMPDIR=WORK/cache nbdfuse -r -P WORK/nbdfuse.pid WORK/mnt --command
#     nbdkit -s --exit-with-parent -r -P WORK/nbdkit.pid
#     --filter=readahead --filter=cache
#     curl url=URL cainfo=CA_FILE
#     cache=writeback cache-on-read=true cache-max-size=4G
#     cache-min-block-size=CACHE_BLOCK (default here 256K)
# (nbdfuse starts nbdkit and talks NBD to it over a socketpair: one
# connection, which costs nothing as the curl plugin serialises requests.)
# TLS is verified against CA_FILE (curl plugin cainfo=, sslverify defaults on).
# HTTP/1.1 (the origin offers no h2). Read-only end to end (-r on both).
# Tuned, and why:
#   --filter=cache cache-on-read=true: keep every block read in a local file
#     (the filter's temporary file in TMPDIR=WORK/cache), like the other peers'
#     disk caches; without it every read goes to the origin.
#   cache-max-size=4G: above the image size, so nothing is evicted during a
#     run (the other peers do not evict either).
#   cache-min-block-size=256K (default 64K; CACHE_BLOCK overrides): the cache
#     filter's block, i.e. the size of each ranged GET on a miss. 256 KiB is
#     affinityfs's chunk size.
#   --filter=readahead: prefetches after sequential reads. Note: in nbdkit 1.32
#     the curl plugin's thread model is serialize_requests, so the readahead
#     filter cannot prefetch in parallel with reads (nbdkit warns about this in
#     WORK/nbdfuse.log, where nbdkit -s logs); it stays because it is the
#     documented combination.
# Behaviour to know: one HTTP request at a time to the origin; no background
# fetching. nbdkit 1.32's curl plugin asks for one byte more than it needs
# (Range: bytes=0-262144 for a 262144-byte block) and drops it, so the
# origin's byte count is 1 byte per request high.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"

PEER_PKGS=(nbdkit libnbd-bin)

peer_start() {
  mkdir -p "$work/mnt" "$work/cache"
  # nbdfuse runs nbdkit itself (--command: NBD over a socketpair, nbdkit -s)
  # and stays in the foreground; it writes its PID file once it serves. nbdkit
  # exits with its parent. (Running nbdkit on its own unix socket and nbdfuse
  # --unix beside it worked by hand, but when started from this script every
  # read failed with ESHUTDOWN; the --command form has no such problem.)
  start_bg "$work" "$work/nbdfuse.log" env TMPDIR="$work/cache" \
    nbdfuse -r -P "$work/nbdfuse.pid" "$work/mnt" --command \
    nbdkit ${NBDKIT_VERBOSE:+-v -D curl.verbose=1} -s --exit-with-parent -r -P "$work/nbdkit.pid" \
    --filter=readahead --filter=cache \
    curl url="$url" cainfo="$ca" \
    cache=writeback cache-on-read=true cache-max-size=4G cache-min-block-size="${CACHE_BLOCK:-256K}"
  record_mount "$work" "$work/mnt"
  wait_nbdfuse
  [ -s "$work/nbdkit.pid" ] && record_pid "$work" "$(cat "$work/nbdkit.pid")"
}

peer_main "$@"
