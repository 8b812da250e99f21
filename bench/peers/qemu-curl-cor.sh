#!/bin/bash
# Peer: qemu-curl.sh plus a local qcow2 overlay filled by copy-on-read, i.e.
# QEMU's own "stream a remote base image into a local cache" setup
# (Debian QEMU 7.2, libnbd-bin 1.14).
#
#   qemu-curl-cor.sh start WORK URL CA_FILE   last stdout line: WORK/mnt/nbd
#   qemu-curl-cor.sh stop WORK
#
# Configuration:
#   qemu-img create -f qcow2 -o cluster_size=CLUSTER (default here 65536)
#     WORK/overlay.qcow2 <image size>        (no backing in the header; the
#                                             chain is built with --blockdev)
#   qemu-storage-daemon --pidfile WORK/qsd.pid
#     --nbd-server addr.type=unix,addr.path=WORK/qsd.sock
#     --blockdev driver=https,node-name=web,url=URL,read-only=on,
#                sslverify=on,readahead=READAHEAD (bytes, default 262144),timeout=30
#     --blockdev driver=file,node-name=ovl-file,filename=WORK/overlay.qcow2,
#                cache.direct=off,aio=threads
#     --blockdev driver=qcow2,node-name=ovl,file=ovl-file,backing=web
#     --blockdev driver=copy-on-read,node-name=cor,file=ovl
#     --export type=nbd,id=exp0,node-name=cor,name=img,writable=off
#   nbdfuse -C 1 -r -P WORK/nbdfuse.pid WORK/mnt nbd+unix:///img?socket=WORK/qsd.sock
#     (one connection: see qemu-common.sh, multi-conn hung the curl driver)
# The copy-on-read filter writes every cluster read from the backing https
# node into the overlay, so a second read of it is local. The export is
# read-only; the overlay is written only by copy-on-read.
# TLS is verified (sslverify=on) against CA_FILE, see qemu-common.sh.
# Tuned, and why:
#   cluster_size 64 KiB: qcow2's default, what `qemu-img create -b` gives;
#     copy-on-read copies whole clusters, so it is also the fetch unit (plus
#     the curl driver's readahead, which stays in the driver's buffers).
#   readahead=262144 (the driver's default) and timeout=30: as qemu-curl.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"
# shellcheck source=SCRIPTDIR/qemu-common.sh
. "$here/qemu-common.sh"

PEER_PKGS=(qemu-system-common qemu-block-extra qemu-utils libnbd-bin util-linux)

peer_start() {
  qemu-img create -q -f qcow2 -o "cluster_size=${CLUSTER:-65536}" "$work/overlay.qcow2" "$size" ||
    die "qemu-img create failed"
  qsd_start "$work" "$ca" \
    --blockdev "driver=https,node-name=web,url=$url,read-only=on,sslverify=on,readahead=${READAHEAD:-262144},timeout=30" \
    --blockdev "driver=file,node-name=ovl-file,filename=$work/overlay.qcow2,cache.direct=off,aio=threads" \
    --blockdev driver=qcow2,node-name=ovl,file=ovl-file,backing=web \
    --blockdev driver=copy-on-read,node-name=cor,file=ovl \
    --export type=nbd,id=exp0,node-name=cor,name=img,writable=off
  nbdfuse_start "$work" img
}

peer_main "$@"
