// HttpsSession: one accepted connection of affinity-storaged, driven as an
// asynchronous state machine on its own strand (Boost.Beast over Asio+OpenSSL):
//
//   handshake -> [read request -> route -> (test delay) -> write reply]* -> close
//
// * TLS handshake with mutual TLS (see tls_context.h); a failure is logged as
//   one line with OpenSSL's reason and the connection is dropped.
// * After the handshake the peer is identified once (client_roles.h: key
//   fingerprint, admin or not) and every request carries that identity.
// * Requests are read with Beast's parser: header size limited
//   (`header_limit`), body size limited (`body_limit`, PUT/POST only; the
//   router refuses a body elsewhere); a malformed request is answered 400
//   `bad_request` and the connection closed.
// * Keep-alive: requests on one connection are served in order until the
//   client closes, asks to close, or is idle longer than `idle_timeout`
//   (which also bounds the handshake and a request's arrival).
// * Replies from memory are written in one go; streamed image ranges are read
//   from the open file 1 MiB at a time and written piece by piece, each piece
//   bounded by `write_timeout`. A test delay is waited on an asio timer, so a
//   delayed reply holds no I/O thread.
//
// Thread safety: all state lives on the session's strand; Start() and
// RequestStop() may be called from any thread. The ssl::context, router and
// registry must outlive the session.
// Failure: nothing throws out of a completion handler on purpose (routing is
// noexcept); network errors end the connection with a debug log line.
#pragma once

// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized
// inside Beast's parser (boost::optional in basic_parser.hpp); silence it for
// Boost's headers only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/api_router.h"
#include "storage/client_roles.h"
#include "storage/connection_registry.h"
#include "storage/reply.h"

namespace affinity::storage {

struct SessionLimits {
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds write_timeout{60};
  uint32_t header_limit = 16 * 1024;
  uint64_t body_limit = 16 * 1024 * 1024;  // a PUT of one write at most
};

class HttpsSession : public std::enable_shared_from_this<HttpsSession> {
 public:
  static constexpr size_t kStreamPiece = 1 << 20;

  // `socket` must have a strand executor (accepted with make_strand).
  HttpsSession(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls, ApiRouter& router,
               const ClientRoles& roles, ConnectionRegistry& registry, SessionLimits limits);
  ~HttpsSession();
  HttpsSession(const HttpsSession&) = delete;
  HttpsSession& operator=(const HttpsSession&) = delete;

  const std::string& peer() const { return peer_; }
  // Begins serving; `id` is this session's registry entry (removed on destruction).
  void Start(uint64_t id);
  // Graceful stop: an idle connection is closed now, a reply in progress
  // (or being delayed) is finished and the connection closed after it.
  void RequestStop();

 private:
  enum class Phase { kNew, kHandshake, kReading, kDelaying, kWriting, kClosing };
  using Stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  using ErrorCode = boost::beast::error_code;

  void OnStart();
  void OnHandshake(ErrorCode ec);
  void DoRead();
  void OnRead(ErrorCode ec, size_t bytes);
  void OnDelay(ErrorCode ec);
  void Send();
  template <typename Body>
  void FillHeaders(boost::beast::http::response<Body>& res) const;
  template <typename Message>
  void WriteWhole(std::shared_ptr<Message> res);
  void OnWrite(ErrorCode ec, size_t bytes);
  void StartStream();
  void OnStreamWrite(ErrorCode ec, size_t bytes);
  void DoClose();
  void OnStop();
  void Expire(std::chrono::steady_clock::duration d);

  // Constant after construction.
  const std::string peer_;
  ApiRouter& router_;
  const ClientRoles& roles_;
  ConnectionRegistry& registry_;
  const SessionLimits limits_;
  std::optional<uint64_t> id_;

  // Strand state.
  Stream stream_;
  boost::beast::flat_buffer buffer_;
  boost::asio::steady_timer delay_timer_;
  PeerIdentity identity_;  // set once the handshake succeeded
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  Phase phase_ = Phase::kNew;
  bool stopping_ = false;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  Reply reply_;
  std::shared_ptr<void> in_flight_;  // the message async_write is sending
  std::optional<boost::beast::http::response<boost::beast::http::buffer_body>> stream_res_;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::buffer_body>> stream_sr_;
  std::vector<char> piece_;
  uint64_t stream_pos_ = 0;
};

}  // namespace affinity::storage
