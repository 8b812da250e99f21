#include "storage/https_session.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace affinity::storage {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr size_t kReadBufferLimit = 64 * 1024;  // header_limit plus pipelined requests
constexpr auto kCloseTimeout = std::chrono::seconds(2);

std::string PeerName(const tcp::socket& socket) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown peer";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

std::string ParseErrorReason(const beast::error_code& ec, uint32_t header_limit) {
  if (ec == http::error::header_limit) {
    return "request header is larger than " + std::to_string(header_limit) + " bytes";
  }
  if (ec == http::error::body_limit) return "the request body is larger than the server accepts";
  if (ec == http::error::buffer_overflow) return "request is larger than the server accepts";
  return "malformed HTTP request: " + ec.message();
}

}  // namespace

HttpsSession::HttpsSession(tcp::socket socket, ssl::context& tls, ApiRouter& router, const ClientRoles& roles,
                           ConnectionRegistry& registry, SessionLimits limits)
    : peer_(PeerName(socket)),
      router_(router),
      roles_(roles),
      registry_(registry),
      limits_(limits),
      stream_(std::move(socket), tls),
      buffer_(kReadBufferLimit),
      delay_timer_(stream_.get_executor()) {}

HttpsSession::~HttpsSession() {
  if (id_) registry_.Remove(*id_);
}

void HttpsSession::Start(uint64_t id) {
  id_ = id;
  net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpsSession::OnStart, shared_from_this()));
}

void HttpsSession::RequestStop() {
  net::post(stream_.get_executor(), beast::bind_front_handler(&HttpsSession::OnStop, shared_from_this()));
}

void HttpsSession::Expire(std::chrono::steady_clock::duration d) { beast::get_lowest_layer(stream_).expires_after(d); }

void HttpsSession::OnStart() {
  if (stopping_) return;
  phase_ = Phase::kHandshake;
  Expire(limits_.idle_timeout);
  stream_.async_handshake(ssl::stream_base::server,
                          beast::bind_front_handler(&HttpsSession::OnHandshake, shared_from_this()));
}

void HttpsSession::OnHandshake(ErrorCode ec) {
  if (ec == net::error::operation_aborted) return;
  if (ec == beast::error::timeout) {
    spdlog::info("TLS handshake with {} failed: no handshake within {} s", peer_, limits_.idle_timeout.count());
    return;
  }
  if (ec) {
    std::string why = ec.message();
    long verify = SSL_get_verify_result(stream_.native_handle());
    if (verify != X509_V_OK) why += std::string(" (client certificate: ") + X509_verify_cert_error_string(verify) + ")";
    spdlog::info("TLS handshake with {} failed: {}", peer_, why);
    return;
  }
  identity_ = roles_.Identify(stream_.native_handle(), peer_);
  spdlog::debug("{}: TLS established ({}), client {}{}", peer_, SSL_get_version(stream_.native_handle()),
                identity_.subject, identity_.admin ? " (admin)" : "");
  DoRead();
}

void HttpsSession::DoRead() {
  if (stopping_) return DoClose();
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->header_limit(limits_.header_limit);
  parser_->body_limit(limits_.body_limit);
  Expire(limits_.idle_timeout);
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpsSession::OnRead, shared_from_this()));
}

void HttpsSession::OnRead(ErrorCode ec, size_t /*bytes*/) {
  if (ec == http::error::end_of_stream) return DoClose();  // the client closed after its last request
  if (ec == net::error::operation_aborted) return;         // stopping while idle
  if (ec == beast::error::timeout) {
    spdlog::debug("{}: no request within {} s; closing the connection", peer_, limits_.idle_timeout.count());
    return;
  }
  if (ec == http::error::partial_message) {
    spdlog::info("{}: connection closed in the middle of a request", peer_);
    return;
  }
  if (ec && IsHttpParseError(ec)) {
    reply_ = router_.MalformedRequest(peer_, ParseErrorReason(ec, limits_.header_limit));
    keep_alive_ = false;
    version_ = 11;
    return Send();
  }
  if (ec) {
    spdlog::debug("{}: read failed: {}", peer_, ec.message());
    return;
  }
  auto& req = parser_->get();
  ApiRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.peer = identity_;
  if (auto range = req.find(http::field::range); range != req.end()) request.range = std::string(range->value());
  if (auto a = req.find(http::field::authorization); a != req.end()) request.authorization = std::string(a->value());
  if (auto p = req.find("Affinity-Purpose"); p != req.end()) request.purpose = std::string(p->value());
  if (auto c = req.find(http::field::content_range); c != req.end()) request.content_range = std::string(c->value());
  request.body = std::move(req.body());
  // A peek at the TCP socket under the TLS layer: 0 bytes is the client's
  // FIN (its process died or it gave up on the request), an error a reset.
  request.client_gone = [fd = beast::get_lowest_layer(stream_).socket().native_handle()] {
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  };
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  reply_ = router_.Handle(request);
  parser_.reset();
  if (reply_.delay.count() > 0 && !stopping_) {
    phase_ = Phase::kDelaying;
    delay_timer_.expires_after(reply_.delay);
    delay_timer_.async_wait(beast::bind_front_handler(&HttpsSession::OnDelay, shared_from_this()));
    return;
  }
  Send();
}

void HttpsSession::OnDelay(ErrorCode /*ec*/) {
  Send();  // also when cancelled by a stop: the reply is finished, not dropped
}

template <typename Body>
void HttpsSession::FillHeaders(http::response<Body>& res) const {
  res.set(http::field::server, "affinity-storaged");
  for (const auto& [name, value] : reply_.headers) res.set(name, value);
  res.keep_alive(keep_alive_);
}

template <typename Message>
void HttpsSession::WriteWhole(std::shared_ptr<Message> res) {
  Message& message = *res;
  in_flight_ = std::move(res);
  Expire(limits_.write_timeout);
  http::async_write(stream_, message, beast::bind_front_handler(&HttpsSession::OnWrite, shared_from_this()));
}

void HttpsSession::Send() {
  phase_ = Phase::kWriting;
  keep_alive_ = keep_alive_ && !stopping_;
  const auto status = static_cast<http::status>(reply_.status);
  if (reply_.head_only) {
    auto res = std::make_shared<http::response<http::empty_body>>(status, version_);
    FillHeaders(*res);
    res->content_length(reply_.content_length);  // the length of the GET body; none is sent
    return WriteWhole(std::move(res));
  }
  if (reply_.stream_file) return StartStream();
  auto res = std::make_shared<http::response<http::string_body>>(status, version_);
  FillHeaders(*res);
  res->body() = std::move(reply_.body);
  res->content_length(res->body().size());
  WriteWhole(std::move(res));
}

void HttpsSession::OnWrite(ErrorCode ec, size_t /*bytes*/) {
  in_flight_.reset();
  reply_ = Reply();
  if (ec) {
    spdlog::debug("{}: write failed: {}", peer_, ec.message());
    return;
  }
  if (!keep_alive_ || stopping_) return DoClose();
  DoRead();
}

void HttpsSession::StartStream() {
  stream_res_.emplace(static_cast<http::status>(reply_.status), version_);
  FillHeaders(*stream_res_);
  stream_res_->content_length(reply_.stream_range.length);
  stream_res_->body().data = nullptr;
  stream_res_->body().more = true;
  stream_sr_.emplace(*stream_res_);
  stream_pos_ = reply_.stream_range.offset;
  piece_.resize(static_cast<size_t>(std::min<uint64_t>(kStreamPiece, reply_.stream_range.length)));
  Expire(limits_.write_timeout);
  http::async_write_header(stream_, *stream_sr_,
                           beast::bind_front_handler(&HttpsSession::OnStreamWrite, shared_from_this()));
}

void HttpsSession::OnStreamWrite(ErrorCode ec, size_t /*bytes*/) {
  if (ec == http::error::need_buffer) ec = {};  // the piece was sent; the body wants more
  if (ec) {
    spdlog::debug("{}: streaming write failed: {}", peer_, ec.message());
    return;
  }
  if (stream_sr_->is_done()) {
    stream_sr_.reset();
    stream_res_.reset();
    piece_ = {};
    return OnWrite({}, 0);
  }
  const uint64_t end = reply_.stream_range.end();
  const size_t n = static_cast<size_t>(std::min<uint64_t>(piece_.size(), end - stream_pos_));
  auto& body = stream_res_->body();
  if (n == 0) {
    body.data = nullptr;
    body.size = 0;
    body.more = false;
  } else {
    Status s = reply_.stream_file->ReadAt(stream_pos_, std::span<char>(piece_.data(), n));
    if (!s.ok()) {
      // Headers (with the digest) are out; all we can do is cut the body short.
      spdlog::error("{}: streaming {}: {}; closing the connection mid-body", peer_,
                    FormatContentRange(reply_.stream_range, reply_.stream_file->info().size), s.message());
      beast::get_lowest_layer(stream_).close();
      return;
    }
    if (reply_.corrupt_stream && stream_pos_ == reply_.stream_range.offset)
      piece_[0] = static_cast<char>(piece_[0] ^ 1);
    stream_pos_ += n;
    body.data = piece_.data();
    body.size = n;
    body.more = stream_pos_ < end;
  }
  Expire(limits_.write_timeout);
  http::async_write(stream_, *stream_sr_, beast::bind_front_handler(&HttpsSession::OnStreamWrite, shared_from_this()));
}

void HttpsSession::DoClose() {
  phase_ = Phase::kClosing;
  Expire(kCloseTimeout);
  stream_.async_shutdown([self = shared_from_this()](ErrorCode) {
    // close_notify exchanged (or the peer had gone); the socket closes with the session.
  });
}

void HttpsSession::OnStop() {
  stopping_ = true;
  switch (phase_) {
    case Phase::kNew:
      break;  // OnStart sees stopping_
    case Phase::kHandshake:
    case Phase::kReading:
      beast::get_lowest_layer(stream_).cancel();
      break;
    case Phase::kDelaying:
      delay_timer_.cancel();
      break;
    case Phase::kWriting:
    case Phase::kClosing:
      break;  // finishes, then closes
  }
}

}  // namespace affinity::storage
