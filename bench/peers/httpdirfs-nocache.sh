#!/bin/bash
# Peer: HTTPDirFS without its cache (Debian httpdirfs 1.2.5): httpdirfs.sh with
# HTTPDIRFS_CACHE=0, i.e.
#   httpdirfs -f --cacert CA_FILE --no-range-check -o ro <directory of URL> WORK/mnt
# Every FUSE read is one ranged GET of exactly that range; nothing is kept
# (only the kernel page cache). It exists because httpdirfs.sh's --cache mode
# returns wrong bytes for reads across its segment boundaries (see there);
# this mode returns the right bytes.
#
#   httpdirfs-nocache.sh start WORK URL CA_FILE | stop WORK   (as httpdirfs.sh)
set -euo pipefail
HTTPDIRFS_CACHE=0 exec "$(dirname "$0")/httpdirfs.sh" "$@"
