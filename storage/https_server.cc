#include "storage/https_server.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace affinity::storage {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

class HttpsServer::Impl {
 public:
  Impl(Api* api, TestFaults* faults, ServerOptions options)
      : api_(api), faults_(faults), options_(std::move(options)), tls_(ssl::context::tls_server), acceptor_(io_) {}

  Status Init() {
    try {
      tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    } catch (const std::exception& e) {
      return Internal(std::string("TLS context: ") + e.what());
    }
    auto load = [](const char* what, const std::string& path, auto fn) -> Status {
      try {
        fn();
      } catch (const std::exception& e) {
        return InvalidArgument(std::string(what) + " '" + path + "': " + e.what());
      }
      return Status::Ok();
    };
    Status s = load("--tls-cert", options_.cert_file, [&] { tls_.use_certificate_chain_file(options_.cert_file); });
    if (s.ok()) s = load("--tls-key", options_.key_file, [&] { tls_.use_private_key_file(options_.key_file, ssl::context::pem); });
    if (s.ok()) s = load("--client-ca", options_.client_ca_file, [&] { tls_.load_verify_file(options_.client_ca_file); });
    if (!s.ok()) return s;
    if (SSL_CTX_check_private_key(tls_.native_handle()) != 1) {
      return InvalidArgument("--tls-key '" + options_.key_file + "' does not match --tls-cert '" + options_.cert_file + "'");
    }
    tls_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Needed for session resumption with client certificates (clients reuse TLS sessions).
    static const unsigned char kSidCtx[] = "affinity-storaged";
    SSL_CTX_set_session_id_context(tls_.native_handle(), kSidCtx, sizeof kSidCtx - 1);

    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgument("--listen host '" + options_.host + "': " + ec.message());
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return InvalidArgument("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
                             ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  ~Impl() { Stop(); }

  uint16_t port() const { return port_; }

  void Start() {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::unique_lock lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    idle_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return open_fds_.empty(); });
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_) break;
      if (ec) {
        spdlog::warn("accept: {}", ec.message());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // e.g. EMFILE: do not spin
        continue;
      }
      int fd = socket.native_handle();
      {
        std::lock_guard lock(mu_);
        if (static_cast<int>(open_fds_.size()) >= options_.max_connections) {
          spdlog::warn("refusing connection: {} connections open", open_fds_.size());
          continue;  // socket closes here
        }
        open_fds_.insert(fd);
      }
      std::thread([this, s = std::move(socket), fd]() mutable {
        try {
          Serve(std::move(s));
        } catch (const std::exception& e) {
          spdlog::warn("connection ended by an exception: {}", e.what());
        }
        std::lock_guard lock(mu_);
        open_fds_.erase(fd);
        idle_cv_.notify_all();
      }).detach();
    }
  }

  void SetTimeouts(int fd) {
    timeval tv{};
    tv.tv_sec = options_.idle_timeout.count();
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void Serve(tcp::socket socket) {
    std::string peer;
    {
      boost::system::error_code ec;
      auto ep = socket.remote_endpoint(ec);
      peer = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    SetTimeouts(socket.native_handle());
    ssl::stream<tcp::socket> stream(std::move(socket), tls_);
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) {
      spdlog::info("TLS handshake with {} failed: {}", peer, ec.message());
      return;
    }
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(16 * 1024);
      http::read(stream, buffer, parser, ec);
      if (ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated ||
          ec == asio::error::eof || ec == asio::error::connection_reset) {
        break;
      }
      if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::timed_out) {
        break;  // idle timeout
      }
      if (ec) {
        spdlog::info("malformed request from {}: {}", peer, ec.message());
        Reply bad;
        bad.status = 400;
        bad.body = R"({"error":"bad_request","reason":")" + ec.message() + "\"}";
        bad.content_length = bad.body.size();
        bad.headers.emplace_back("Content-Type", "application/json");
        bad.headers.emplace_back("Affinity-Error", "bad_request");
        WriteReply(stream, bad, 11, false, ec);
        break;
      }
      const auto& req = parser.get();
      ApiRequest ar;
      ar.method = std::string(req.method_string());
      ar.target = std::string(req.target());
      auto range = req.find(http::field::range);
      if (range != req.end()) ar.range = std::string(range->value());
      Reply reply = api_->Handle(ar);
      if (reply.is_data && faults_->delay().count() > 0) std::this_thread::sleep_for(faults_->delay());
      bool keep_alive = req.keep_alive();
      WriteReply(stream, reply, req.version(), keep_alive, ec);
      if (ec || !keep_alive || stopping_) break;
    }
    stream.shutdown(ec);
  }

  template <typename Message>
  static void ApplyHeaders(Message& res, const Reply& reply, bool keep_alive) {
    res.set(http::field::server, "affinity-storaged");
    for (const auto& [k, v] : reply.headers) res.set(k, v);
    res.keep_alive(keep_alive);
  }

  void WriteReply(ssl::stream<tcp::socket>& stream, Reply& reply, unsigned version, bool keep_alive,
                  boost::system::error_code& ec) {
    auto status = static_cast<http::status>(reply.status);
    if (reply.head_only) {
      http::response<http::empty_body> res{status, version};
      ApplyHeaders(res, reply, keep_alive);
      res.set(http::field::content_length, std::to_string(reply.content_length));
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(stream, sr, ec);
      return;
    }
    if (!reply.file) {
      http::response<http::string_body> res{status, version};
      ApplyHeaders(res, reply, keep_alive);
      res.body() = std::move(reply.body);
      res.prepare_payload();
      http::write(stream, res, ec);
      return;
    }
    // Streamed range: the digest header was computed in a first pass.
    http::response<http::buffer_body> res{status, version};
    ApplyHeaders(res, reply, keep_alive);
    res.content_length(reply.file_range.length);
    res.body().data = nullptr;
    res.body().more = true;
    http::response_serializer<http::buffer_body> sr{res};
    http::write_header(stream, sr, ec);
    if (ec) return;
    std::vector<char> buf(1 << 20);
    uint64_t pos = reply.file_range.offset, end = reply.file_range.end();
    bool first = true;
    while (pos < end) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
      ssize_t n = ::pread(reply.file->fd(), buf.data(), want, static_cast<off_t>(pos));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        spdlog::error("streaming {} bytes: read failed at {}; closing the connection", reply.file_range.length, pos);
        ec = asio::error::broken_pipe;
        return;
      }
      if (first && reply.corrupt_stream) buf[0] = static_cast<char>(buf[0] ^ 0x01);
      first = false;
      pos += static_cast<uint64_t>(n);
      res.body().data = buf.data();
      res.body().size = static_cast<size_t>(n);
      res.body().more = pos < end;
      http::write(stream, sr, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return;
    }
  }

  Api* api_;
  TestFaults* faults_;
  ServerOptions options_;
  asio::io_context io_;
  ssl::context tls_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::set<int> open_fds_;  // guarded by mu_
};

Result<std::unique_ptr<HttpsServer>> HttpsServer::Create(const ServerOptions& options, Api* api, TestFaults* faults) {
  auto impl = std::make_unique<Impl>(api, faults, options);
  Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

HttpsServer::HttpsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsServer::~HttpsServer() = default;
uint16_t HttpsServer::port() const { return impl_->port(); }
void HttpsServer::Start() { impl_->Start(); }
void HttpsServer::Stop() { impl_->Stop(); }

}  // namespace affinity::storage
