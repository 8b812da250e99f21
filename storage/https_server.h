// HttpsServer: the mutual-TLS HTTP/1.1 transport of affinity-storaged
// (Boost.Beast over Boost.Asio + OpenSSL).
//
// Model: `threads` I/O threads, each running an io_context of its own. The
// acceptor lives on the first; accepted connections are spread over the
// contexts round robin, and an HttpsSession (on a strand of its own) stays on
// its context for life, so one connection's handlers never run concurrently
// or change threads, while different connections proceed in parallel. Routing, disk reads and hashing
// run inside a session's handler (they block that I/O thread for the
// duration of one request's work); network waits and test delays never block
// a thread. SO_REUSEADDR is set so a restarted server can rebind its port at once.
// Connections beyond `max_connections` are closed as soon as they are accepted.
//
// Stop(): stop accepting, close idle connections, let replies in progress
// finish (bounded by `stop_grace`), then stop the io_context and join.
//
// Thread safety: Create/Start/Stop/port from one owning thread; the router
// is called concurrently from the I/O threads. An exception escaping a
// handler is logged and the I/O thread carries on.
// Failure: Create() returns kInvalidArgument naming the bad TLS file or the
// address that cannot be bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "common/status.h"
#include "storage/api_router.h"
#include "storage/client_roles.h"
#include "storage/listen_address.h"
#include "storage/tls_context.h"

namespace affinity::storage {

struct ServerOptions {
  ListenAddress listen;
  TlsFiles tls;
  int threads = 4;
  size_t max_connections = 512;
  std::chrono::seconds idle_timeout{60};   // handshake, and waiting for a request
  std::chrono::seconds write_timeout{60};  // each write to a slow client
  std::chrono::seconds stop_grace{10};
  uint32_t header_limit = 16 * 1024;
};

class HttpsServer {
 public:
  // Loads the TLS files and binds (but does not accept yet). `router` must
  // outlive the server.
  // `roles` tells admin certificates from data ones.
  static Result<std::unique_ptr<HttpsServer>> Create(const ServerOptions& options, ApiRouter* router,
                                                     const ClientRoles* roles);
  ~HttpsServer();  // Stop()s if running

  uint16_t port() const;  // the bound port (useful with port 0)
  void Start();
  void Stop();

 private:
  class Impl;
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace affinity::storage
