#include "storage/https_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <exception>
#include <future>
#include <thread>
#include <vector>

#include "storage/connection_registry.h"
#include "storage/https_session.h"

namespace affinity::storage {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

class HttpsServer::Impl {
 public:
  Impl(ServerOptions options, ApiRouter* router, const ClientRoles* roles, std::unique_ptr<ssl::context> tls)
      : options_(std::move(options)),
        router_(router),
        roles_(roles),
        tls_(std::move(tls)),
        registry_(options_.max_connections),
        contexts_(MakeContexts(options_.threads)),
        acceptor_(net::make_strand(*contexts_.front())),
        accept_retry_(acceptor_.get_executor()) {}

  ~Impl() { Stop(); }

  Status Bind() {
    const std::string where = options_.listen.host + ":" + std::to_string(options_.listen.port);
    boost::system::error_code ec;
    auto address = net::ip::make_address(options_.listen.host, ec);
    if (ec) return InvalidArgument("--listen host '" + options_.listen.host + "' is not an IP address");
    tcp::endpoint endpoint(address, options_.listen.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return InvalidArgument("cannot listen on " + where + ": " + ec.message());
    port_ = acceptor_.local_endpoint(ec).port();
    return Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Start() {
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
    threads_.reserve(contexts_.size());
    for (auto& ioc : contexts_) {
      // Keeps run() going while a context has no connection yet.
      guards_.push_back(net::make_work_guard(*ioc));
      threads_.emplace_back([ioc = ioc.get()] { RunIoThread(*ioc); });
    }
    started_ = true;
  }

  void Stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    const auto deadline = std::chrono::steady_clock::now() + options_.stop_grace;
    // 1. No new connections (on the acceptor's strand, then wait for it).
    auto closed = std::make_shared<std::promise<void>>();
    auto closed_future = closed->get_future();
    net::post(acceptor_.get_executor(), [this, closed] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      accept_retry_.cancel();
      closed->set_value();
    });
    closed_future.wait_until(deadline);
    // 2. Idle connections close now, busy ones after their reply.
    size_t open = 0;
    for (const auto& session : registry_.Snapshot()) {
      session->RequestStop();
      ++open;
    }
    spdlog::info("stopping: {} connection(s) open", open);
    // 3. Bounded wait, then stop whatever is left.
    if (!registry_.WaitEmpty(deadline)) {
      spdlog::warn("stopping: {} connection(s) still busy after {} s; dropping them", registry_.size(),
                   options_.stop_grace.count());
    }
    guards_.clear();
    for (auto& ioc : contexts_) ioc->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  // One io_context per I/O thread, each run by its thread alone: a connection
  // stays on the thread that accepted it, so its handlers never hop between
  // threads (with one shared io_context, every completion woke another
  // thread: about 0.1 ms per 256 KiB reply on two cores).
  static std::vector<std::unique_ptr<net::io_context>> MakeContexts(int threads) {
    std::vector<std::unique_ptr<net::io_context>> contexts;
    for (int i = 0; i < threads; ++i) contexts.push_back(std::make_unique<net::io_context>(1));
    return contexts;
  }

  // The context for the next connection (round robin; only the acceptor's strand calls it).
  net::io_context& NextContext() {
    net::io_context& ioc = *contexts_[next_context_];
    next_context_ = (next_context_ + 1) % contexts_.size();
    return ioc;
  }

  static void RunIoThread(net::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("an exception escaped an I/O handler (the thread carries on): {}", e.what());
      } catch (...) {
        spdlog::error("a non-standard exception escaped an I/O handler (the thread carries on)");
      }
    }
  }

  void DoAccept() {
    acceptor_.async_accept(net::make_strand(NextContext()), boost::beast::bind_front_handler(&Impl::OnAccept, this));
  }

  void OnAccept(boost::system::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;  // stopping
    if (ec) {
      // E.g. EMFILE: back off briefly instead of spinning on the error.
      spdlog::warn("accept failed: {}; retrying in 50 ms", ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(50));
      accept_retry_.async_wait([this](boost::system::error_code e) {
        if (!e && acceptor_.is_open()) DoAccept();
      });
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    SessionLimits limits{options_.idle_timeout, options_.write_timeout, options_.header_limit};
    auto session = std::make_shared<HttpsSession>(std::move(socket), *tls_, *router_, *roles_, registry_, limits);
    if (auto id = registry_.Add(session)) {
      session->Start(*id);
    } else {
      spdlog::warn("refused a connection from {}: {} connections are open (--max-connections)", session->peer(),
                   options_.max_connections);
    }
    DoAccept();
  }

  // Declaration order matters: the io_contexts (and with them every pending
  // handler and session) are destroyed before the registry and TLS context.
  const ServerOptions options_;
  ApiRouter* const router_;
  const ClientRoles* const roles_;
  const std::unique_ptr<ssl::context> tls_;
  ConnectionRegistry registry_;
  std::vector<std::unique_ptr<net::io_context>> contexts_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  size_t next_context_ = 0;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

Result<std::unique_ptr<HttpsServer>> HttpsServer::Create(const ServerOptions& options, ApiRouter* router,
                                                         const ClientRoles* roles) {
  if (options.threads < 1) return InvalidArgument("--threads must be at least 1");
  auto tls = MakeServerTlsContext(options.tls);
  if (!tls.ok()) return tls.status();
  auto impl = std::make_unique<Impl>(options, router, roles, std::move(tls).value());
  Status s = impl->Bind();
  if (!s.ok()) return s;
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

HttpsServer::HttpsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsServer::~HttpsServer() = default;
uint16_t HttpsServer::port() const { return impl_->port(); }
void HttpsServer::Start() { impl_->Start(); }
void HttpsServer::Stop() { impl_->Stop(); }

}  // namespace affinity::storage
