#!/bin/bash
# Installs (apt-get, only what is missing) everything the peer comparison
# needs: the origin (nginx + lua), every peer, and gnuplot for the plots.
# Debian 12 package names. Services are not started or configured: the
# scripts run their own processes with their own configuration.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"
[ "$(id -u)" = 0 ] || die "run as root"
pkgs=(nginx-light libnginx-mod-http-lua libnginx-mod-http-ndk
  rclone httpdirfs nbdkit libnbd-bin qemu-system-common qemu-block-extra qemu-utils
  fuse3 curl util-linux openssl gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
  ensure_pkgs "${missing[@]}"
fi
log "all installed: ${pkgs[*]}"
