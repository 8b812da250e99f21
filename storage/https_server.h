// HttpsServer: mutual-TLS HTTP/1.1 transport of the storage host
// (Boost.Beast over Boost.Asio + OpenSSL).
//
// Model: one accept thread; one thread per connection, doing blocking TLS
// reads and writes with socket timeouts. Each connection serves requests in
// order (keep-alive) until the client closes, the idle timeout passes, or a
// malformed request arrives (answered 400, then closed). A client without a
// certificate signed by --client-ca fails the handshake and gets nothing.
// Connections beyond `max_connections` are closed at once.
//
// Thread safety: Start/Stop from the owning thread; Api::Handle runs on the
// connection threads concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "storage/api.h"
#include "storage/test_faults.h"

namespace affinity::storage {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  std::string cert_file, key_file, client_ca_file;
  int max_connections = 512;
  std::chrono::seconds idle_timeout{60};
};

class HttpsServer {
 public:
  // Loads certificates and binds; kInvalidArgument names the bad file/address.
  static Result<std::unique_ptr<HttpsServer>> Create(const ServerOptions& options, Api* api, TestFaults* faults);
  ~HttpsServer();

  uint16_t port() const;
  void Start();
  // Stops accepting, closes open connections, waits (bounded) for their threads.
  void Stop();

 private:
  class Impl;
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace affinity::storage
