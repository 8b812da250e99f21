#!/bin/bash
# The peers' origin: a stock nginx serving a directory over HTTPS, with an
# emulated per-request delay (netem is unavailable here).
#
#   nginx.sh start WORK ROOT_DIR DELAY_MS CERT_DIR   last stdout line: https://127.0.0.1:PORT
#   nginx.sh stats WORK    {"requests": N, "bytes": B} since the last reset
#   nginx.sh reset WORK
#   nginx.sh stop WORK
#
# Configuration (own nginx.conf in WORK; /etc/nginx and the system service are
# not used): Debian's nginx-light with libnginx-mod-http-lua (+ ndk), loaded
# explicitly. One worker process (the machine has 2 cores shared by client and
# server; the delay is an ngx.sleep timer, not a blocked worker, so one worker
# keeps any number of requests waiting concurrently). HTTPS on 127.0.0.1 with
# CERT_DIR/server.pem (signed by CERT_DIR/ca.pem), HTTP/1.1 only: no ALPN h2,
# so every peer's libcurl / Go client uses HTTP/1.1 keep-alive connections like
# affinityfs does (ORIGIN_HTTP2=1 offers h2 instead; the Go client of rclone
# and the libcurl clients would then multiplex one connection).
# keepalive_timeout 300 s and keepalive_requests 1e6, so no peer pays a new
# TLS handshake every 1000 requests (nginx's default). Static files: range
# requests, HEAD, ETag/Last-Modified as stock nginx does; autoindex on, so
# directory-listing clients (httpdirfs, rclone's http backend) see the files.
# Delay: access_by_lua_block { ngx.sleep(DELAY_MS/1000) } on every request
# (HEAD and directory listings included) when DELAY_MS > 0. Whole milliseconds
# only: nginx's timers have 1 ms resolution (0.5 ms would be no delay).
# Counting: access log with log_format "$request_method $status
# $body_bytes_sent"; stats sums the lines written since reset (bytes = body
# bytes nginx sent, so an aborted open-ended range counts what went out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../peers/common.sh
. "$here/../peers/common.sh"

usage() { die "usage: $0 start WORK ROOT_DIR DELAY_MS CERT_DIR | stats WORK | reset WORK | stop WORK"; }

port_in_use() {
  # /proc/net/tcp local_address column is HEX_IP:HEX_PORT; match any listener or socket on the port.
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h {f=1} END {exit !f}' /proc/net/tcp /proc/net/tcp6
}

write_conf() {
  local work=$1 root=$2 delay=$3 certs=$4 port=$5 delay_s http2=""
  delay_s=$(awk -v d="$delay" 'BEGIN {printf "%.3f", d / 1000}')
  [ "${ORIGIN_HTTP2:-0}" = 1 ] && http2=" http2"
  local access=""
  if [ "$delay" -gt 0 ]; then
    access="access_by_lua_block { ngx.sleep($delay_s) }"
  fi
  cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
user root root;
worker_processes 1;
daemon on;
master_process on;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  lua_package_path "/usr/share/lua/5.1/?.lua;;";
  log_format bench '\$request_method \$status \$body_bytes_sent \$request_time';
  access_log $work/access.log bench;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port ssl$http2;
    ssl_certificate $certs/server.pem;
    ssl_certificate_key $certs/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:1m;
    root $root;
    location / {
      autoindex on;
      $access
    }
  }
}
CONF
}

cmd=${1:-}
case "$cmd" in
start)
  [ $# -eq 5 ] || usage
  work=$(realpath -m "$2") root=$(realpath "$3") delay=$4 certs=$(realpath "$5")
  [ -d "$root" ] || die "ROOT_DIR $root is not a directory"
  { [ -s "$certs/server.pem" ] && [ -s "$certs/server.key" ]; } || die "no $certs/server.pem/.key (bench/lib.sh gen_certs)"
  # nginx timers count whole milliseconds: ngx.sleep(0.0005) is no delay at all
  # and 1.5 would be 1, so fractions are refused rather than silently wrong.
  [[ $delay =~ ^[0-9]+$ ]] || die "DELAY_MS must be a whole number of ms >= 0 (nginx timers have 1 ms resolution): $delay"
  ensure_pkgs nginx-light libnginx-mod-http-lua curl
  mkdir -p "$work/tmp"
  [ -s "$work/nginx.pid" ] && pid_alive "$(cat "$work/nginx.pid")" && die "nginx already running for $work"
  for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    write_conf "$work" "$root" "$delay" "$certs" "$port"
    rm -f "$work/nginx.pid"
    # daemon on: the first process binds (its exit status reports a clash) and
    # then leaves the master running, which writes the pid file.
    if nginx -p "$work" -e "$work/error.log" -c "$work/nginx.conf" 2>>"$work/nginx.stderr"; then
      for _ in $(seq 1 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done
      [ -s "$work/nginx.pid" ] || die "nginx started but wrote no pid file; see $work/error.log"
      record_pid "$work" "$(cat "$work/nginx.pid")"
      echo "$port" >"$work/port"
      # Ready check over verified TLS (and warm nothing: not counted after reset).
      curl -sf --cacert "$certs/ca.pem" -o /dev/null "https://127.0.0.1:$port/" ||
        die "nginx on port $port does not answer; see $work/error.log"
      stat -c %s "$work/access.log" >"$work/stats.offset"
      log "nginx master $(cat "$work/nginx.pid") on port $port, delay ${delay} ms, root $root"
      echo "https://127.0.0.1:$port"
      exit 0
    fi
    grep -q 'Address already in use' "$work/error.log" "$work/nginx.stderr" || die "nginx failed to start; see $work/error.log"
    log "port $port in use, retrying (attempt $attempt)"
  done
  die "no free port after 20 attempts"
  ;;
stats)
  [ $# -eq 2 ] || usage
  work=$2
  off=$(cat "$work/stats.offset" 2>/dev/null || echo 0)
  tail -c +$((off + 1)) "$work/access.log" 2>/dev/null |
    awk '{n++; b += $3} END {printf "{\"requests\": %d, \"bytes\": %d}\n", n, b}'
  ;;
reset)
  [ $# -eq 2 ] || usage
  work=$2
  stat -c %s "$work/access.log" >"$work/stats.offset"
  ;;
stop)
  [ $# -eq 2 ] || usage
  stop_all "$2"
  ;;
*) usage ;;
esac
