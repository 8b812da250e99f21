# shellcheck shell=bash
# Shared helpers for bench/peers/*.sh and bench/origin/nginx.sh (sourced).
#
# Bookkeeping lives in the run's WORK directory:
#   WORK/pids    one PID per line, every process a script started
#   WORK/mounts  one mountpoint per line
#   WORK/.pidstart  "PID STARTTIME" (field 22 of /proc/PID/stat), so that stop
#                   never signals a recycled PID that now belongs to someone else
# Nothing is ever killed by name.
set -euo pipefail

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_pkgs PKG...: apt-get install the packages that are missing (only those).
ensure_pkgs() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed"
}

pid_starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

# record_pid WORK PID
record_pid() {
  echo "$2" >>"$1/pids"
  echo "$2 $(pid_starttime "$2")" >>"$1/.pidstart"
}

record_mount() { echo "$2" >>"$1/mounts"; }

is_mounted() { awk -v m="$1" '$2 == m {f=1} END {exit !f}' /proc/mounts; }

# pid_alive PID [STARTTIME]: running (not a zombie) and, if given, the same process.
pid_alive() {
  local pid=$1 st=${2:-} state
  [ -r "/proc/$pid/stat" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] || return 1
  [ -z "$st" ] || [ "$(pid_starttime "$pid")" = "$st" ]
}

# wait_mount MNT SECONDS [PID]: until MNT is a mountpoint; fails early if PID dies.
wait_mount() {
  local mnt=$1 secs=$2 pid=${3:-} i
  for ((i = 0; i < secs * 20; i++)); do
    is_mounted "$mnt" && return 0
    if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
    sleep 0.05
  done
  return 1
}

# wait_size FILE SIZE SECONDS [PID]: until FILE exists with SIZE bytes and its
# first byte can be read.
wait_size() {
  local f=$1 size=$2 secs=$3 pid=${4:-} i
  for ((i = 0; i < secs * 10; i++)); do
    if [ "$(stat -c %s "$f" 2>/dev/null || echo -1)" = "$size" ] &&
      dd if="$f" of=/dev/null bs=1 count=1 status=none 2>/dev/null; then
      return 0
    fi
    if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
    sleep 0.1
  done
  return 1
}

# url_size URL CA: the Content-Length of a HEAD request (verified TLS).
url_size() {
  curl -sfI --cacert "$2" "$1" | tr -d '\r' | awk 'tolower($1) == "content-length:" {print $2}' | tail -1
}

# all_gone WORK: waits up to 5 s for every recorded PID to exit; 1 if some did not.
all_gone() {
  local work=$1 pid st i alive
  for ((i = 0; i < 100; i++)); do
    alive=0
    while read -r pid st; do pid_alive "$pid" "$st" && alive=1; done <"$work/.pidstart"
    [ $alive = 0 ] && return 0
    sleep 0.05
  done
  return 1
}

# stop_all WORK: unmount WORK/mounts (lazily if busy), then TERM every recorded
# PID, KILL after 5 s, and wait until they are gone. Idempotent.
stop_all() {
  local work=$1 m pid st i alive
  if [ -f "$work/mounts" ]; then
    while read -r m; do
      [ -n "$m" ] || continue
      if is_mounted "$m"; then
        fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null ||
          umount -l "$m" || log "warning: could not unmount $m"
      fi
    done <"$work/mounts"
  fi
  [ -f "$work/.pidstart" ] || return 0
  # Give FUSE daemons a moment to exit by themselves after their unmount.
  for ((i = 0; i < 40; i++)); do
    alive=0
    while read -r pid st; do pid_alive "$pid" "$st" && alive=1; done <"$work/.pidstart"
    [ $alive = 0 ] && break
    sleep 0.05
  done
  while read -r pid st; do
    if pid_alive "$pid" "$st"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$work/.pidstart"
  all_gone "$work" && return 0
  while read -r pid st; do
    if pid_alive "$pid" "$st"; then log "PID $pid ignored TERM; sending KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  done <"$work/.pidstart"
  all_gone "$work" && return 0
  die "processes still alive after KILL: $(cat "$work/pids")"
}

# start_bg WORK LOG CMD...: runs CMD in the background in its own session
# (stdin closed, output to LOG, so a caller's $(...) does not wait for it),
# records its PID, sets BG_PID.
start_bg() {
  local work=$1 logf=$2
  shift 2
  setsid "$@" </dev/null >>"$logf" 2>&1 &
  BG_PID=$!
  record_pid "$work" "$BG_PID"
}

# url_dir URL / url_base URL: https://h:p/a/b.raw -> https://h:p/a/ and b.raw
url_dir() { echo "${1%/*}/"; }
url_base() { echo "${1##*/}"; }

# wait_served WHAT FILE LOG: waits until WORK/mnt, mounted by BG_PID, shows
# FILE with the image's size; prints FILE (the adapter's last line).
wait_served() {
  wait_mount "$work/mnt" 30 "$BG_PID" || die "$1 did not mount; see $3"
  wait_size "$2" "$size" 30 "$BG_PID" || die "$2 did not appear with $size bytes; see $3"
  echo "$2"
}

# wait_nbdfuse: nbdfuse (BG_PID) writes WORK/nbdfuse.pid once it serves; then
# the mount and WORK/mnt/nbd as wait_served.
wait_nbdfuse() {
  local i
  for ((i = 0; i < 600; i++)); do
    [ -s "$work/nbdfuse.pid" ] && break
    pid_alive "$BG_PID" || break
    sleep 0.05
  done
  [ -s "$work/nbdfuse.pid" ] || die "nbdfuse did not become ready; see $work/nbdfuse.log"
  wait_served nbdfuse "$work/mnt/nbd" "$work/nbdfuse.log"
}

# peer_main "$@": every adapter's command line. `start WORK URL CA_FILE` sets
# work, url, ca and size (the image's length, by a HEAD verified with CA),
# installs PEER_PKGS and calls the adapter's peer_start, which prints the
# file's path last; `stop WORK` is stop_all.
peer_main() {
  case "${1:-}" in
  start)
    [ $# -eq 4 ] || die "usage: $0 start WORK URL CA_FILE"
    work=$(realpath -m "$2") url=$3 ca=$(realpath "$4")
    ensure_pkgs curl fuse3 "${PEER_PKGS[@]}"
    mkdir -p "$work"
    size=$(url_size "$url" "$ca") || true
    [ -n "$size" ] || die "cannot HEAD $url with CA $ca"
    peer_start
    ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop WORK"
    stop_all "$2"
    ;;
  *) die "usage: $0 start WORK URL CA_FILE | stop WORK" ;;
  esac
}
