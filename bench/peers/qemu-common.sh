# shellcheck shell=bash
# Shared by qemu-curl.sh and qemu-curl-cor.sh (sourced after common.sh).
#
# TLS: QEMU's curl block driver has no CA option (its options are url,
# readahead, sslverify, timeout, cookie, username/password, proxy...), and
# Debian links it against libcurl-gnutls, whose CA bundle is the compiled-in
# /etc/ssl/certs/ca-certificates.crt (libcurl itself reads no CA environment
# variable; CURL_CA_BUNDLE is the curl tool's). So verification stays on
# (sslverify=on) and qemu-storage-daemon runs in a private mount namespace
# (unshare -m) where WORK/ca-bundle.crt (the system bundle + CA_FILE) is bind-
# mounted over that path; nothing changes outside the namespace. unshare and
# sh exec, so the recorded PID is qemu-storage-daemon's.

# qsd_start WORK CA_FILE ARGS...: starts qemu-storage-daemon ARGS with the CA
# trusted and an NBD server on WORK/qsd.sock; waits for its PID file, which
# it writes once every option has been set up.
qsd_start() {
  local work=$1 ca=$2
  shift 2
  cat /etc/ssl/certs/ca-certificates.crt "$ca" >"$work/ca-bundle.crt" 2>/dev/null || cp "$ca" "$work/ca-bundle.crt"
  # shellcheck disable=SC2016
  start_bg "$work" "$work/qsd.log" unshare -m --propagation private \
    sh -c 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"' "$work/ca-bundle.crt" \
    qemu-storage-daemon --pidfile "$work/qsd.pid" \
    --nbd-server "addr.type=unix,addr.path=$work/qsd.sock" "$@"
  local i
  for ((i = 0; i < 600; i++)); do
    [ -S "$work/qsd.sock" ] && [ -s "$work/qsd.pid" ] && return 0
    pid_alive "$BG_PID" || break
    sleep 0.05
  done
  die "qemu-storage-daemon did not start; see $work/qsd.log"
}

# nbdfuse_start WORK EXPORT: mounts the export at WORK/mnt/nbd, read-only, and
# waits until it has the image's size (peer_main's $size).
# One NBD connection (-C 1; NBDFUSE_OPTS overrides): with nbdfuse's default
# multi-conn (4 connections, which qemu-storage-daemon allows on a read-only
# export) QEMU 7.2's curl driver stopped answering during a cold sequential
# dd (reads stuck in D state, GETs complete at the origin, qemu-storage-daemon
# ignoring SIGTERM). With one connection it does not hang; nbdfuse still keeps
# several requests in flight on it.
nbdfuse_start() {
  local work=$1 export=$2
  mkdir -p "$work/mnt"
  # shellcheck disable=SC2086
  start_bg "$work" "$work/nbdfuse.log" nbdfuse ${NBDFUSE_OPTS:--C 1} -r -P "$work/nbdfuse.pid" "$work/mnt" \
    "nbd+unix:///$export?socket=$work/qsd.sock"
  record_mount "$work" "$work/mnt"
  wait_nbdfuse
}
