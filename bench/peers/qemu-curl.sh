#!/bin/bash
# Peer: QEMU's curl block driver (https) in qemu-storage-daemon, exported over
# NBD on a unix socket and exposed as a file by nbdfuse (Debian QEMU 7.2,
# libnbd-bin 1.14). No local cache: every read the page cache above nbdfuse
# does not hold goes to the origin.
#
#   qemu-curl.sh start WORK URL CA_FILE   last stdout line: WORK/mnt/nbd
#   qemu-curl.sh stop WORK
#
# Configuration:
#   qemu-storage-daemon --pidfile WORK/qsd.pid
#     --nbd-server addr.type=unix,addr.path=WORK/qsd.sock
#     --blockdev driver=https,node-name=web,url=URL,read-only=on,
#                sslverify=on,readahead=READAHEAD (bytes, default here 262144),timeout=30
#     --export type=nbd,id=exp0,node-name=web,name=img,writable=off
#   nbdfuse -C 1 -r -P WORK/nbdfuse.pid WORK/mnt nbd+unix:///img?socket=WORK/qsd.sock
#     (one connection: see qemu-common.sh, multi-conn hung the curl driver)
# TLS is verified (sslverify=on) against CA_FILE, see qemu-common.sh for how
# (private mount namespace; the driver has no CA option). HTTP/1.1.
# Tuned, and why:
#   readahead=256K (default 256K, READAHEAD overrides): each miss asks for the
#     read plus this much; the driver keeps the data of its few in-flight and
#     last requests (up to 8 curl states) and serves later reads that fall
#     inside. 256 KiB is affinityfs's chunk size; kept at the default.
#   timeout=30 (default 5 s): a GET waiting on a busy origin must not fail.
# Behaviour to know: no persistent cache at all, so re-reads after the page
# cache is dropped go to the origin again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"
# shellcheck source=SCRIPTDIR/qemu-common.sh
. "$here/qemu-common.sh"

PEER_PKGS=(qemu-system-common qemu-block-extra libnbd-bin util-linux)

peer_start() {
  qsd_start "$work" "$ca" \
    --blockdev "driver=https,node-name=web,url=$url,read-only=on,sslverify=on,readahead=${READAHEAD:-262144},timeout=30" \
    --export type=nbd,id=exp0,node-name=web,name=img,writable=off
  nbdfuse_start "$work" img
}

peer_main "$@"
