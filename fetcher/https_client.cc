#include "fetcher/https_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <future>
#include <list>
#include <mutex>
#include <thread>

#include "fetcher/attempt_check.h"
#include "fetcher/request_queue.h"
#include "fetcher/retry_policy.h"

namespace affinity::fetcher {
namespace {

using Clock = std::chrono::steady_clock;

// curl_global_init is not thread-safe; do it once, before any client exists.
void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

// One request through all its attempts.
struct Transfer {
  Request request;
  Callback done;
  Clock::time_point submitted = Clock::now();
  Clock::time_point retry_at{};
  int attempts = 0;
  std::string first_error;
  AttemptFailure last{FetchError::kConnect, 0, ""};

  // Per attempt:
  CURL* easy = nullptr;
  std::vector<uint8_t> body;
  AttemptResult result;
  char errbuf[CURL_ERROR_SIZE] = {};
};
using TransferPtr = std::unique_ptr<Transfer>;

class HttpsClient::Impl {
 public:
  explicit Impl(ClientConfig config)
      : config_(std::move(config)),
        queue_(config_.max_connections, config_.reserved_demand_connections),
        retry_(config_.initial_backoff, config_.max_backoff, static_cast<uint64_t>(::getpid()) ^ 0x9e3779b97f4a7c15ull) {}

  Status Init() {
    GlobalInitOnce();
    multi_ = curl_multi_init();
    share_ = curl_share_init();
    if (multi_ == nullptr || share_ == nullptr) return Internal("curl_multi_init failed");
    // One thread uses the share handle, so it needs no lock callbacks.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(config_.max_connections));
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(config_.max_connections));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(config_.max_connections * 2));
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
    if (thread_.joinable()) thread_.join();
    for (CURL* e : idle_) curl_easy_cleanup(e);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
  }

  void Submit(Request request, Callback done) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    bool stopped;
    {
      std::lock_guard lock(mu_);
      stopped = stop_;
      if (!stopped) {
        (t->request.priority == Priority::kDemand ? queued_demand_ : queued_prefetch_)++;
        incoming_.push_back(std::move(t));
      }
    }
    if (stopped) {
      Finish(std::move(t), Cancelled("HTTPS client is shutting down"), FetchError::kCancelled, 0);
      return;
    }
    curl_multi_wakeup(multi_);
  }

  ClientStats Stats() const {
    ClientStats s;
    s.requests_started = started_.load();
    s.requests_failed = failed_.load();
    s.retries = retries_.load();
    s.bytes_received = bytes_.load();
    s.queued_demand = queued_demand_.load();
    s.queued_prefetch = queued_prefetch_.load();
    s.running = running_count_.load();
    return s;
  }

  const ClientConfig& config() const { return config_; }

 private:
  void Loop() {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stop_) break;
        for (auto& t : incoming_) {
          Priority p = t->request.priority;  // read before the move below
          queue_.Push(p, std::move(t));
        }
        incoming_.clear();
      }
      PromoteDueRetries();
      ExpireQueued();
      StartWhatFits();
      int still_running = 0;
      curl_multi_perform(multi_, &still_running);
      ReapCompleted();
      curl_multi_poll(multi_, nullptr, 0, PollTimeoutMs(), nullptr);
    }
    CancelEverything();
  }

  int PollTimeoutMs() const {
    auto next = Clock::now() + std::chrono::milliseconds(500);
    for (const auto& t : waiting_) next = std::min(next, t->retry_at);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(ms, 0, 500));
  }

  void PromoteDueRetries() {
    auto now = Clock::now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->retry_at <= now) {
        Priority p = (*it)->request.priority;
        (p == Priority::kDemand ? queued_demand_ : queued_prefetch_)++;
        queue_.Push(p, std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void ExpireQueued() {
    auto now = Clock::now();
    auto expired = queue_.RemoveIf([&](const TransferPtr& t) { return t->request.deadline <= now; });
    for (auto& t : expired) {
      (t->request.priority == Priority::kDemand ? queued_demand_ : queued_prefetch_)--;
      GiveUp(std::move(t));
    }
  }

  void StartWhatFits() {
    for (;;) {
      auto next = queue_.PopStartable(static_cast<int>(running_.size()));
      if (!next) return;
      TransferPtr t = std::move(*next);
      (t->request.priority == Priority::kDemand ? queued_demand_ : queued_prefetch_)--;
      StartAttempt(std::move(t));
    }
  }

  CURL* TakeEasy() {
    if (!idle_.empty()) {
      CURL* e = idle_.back();
      idle_.pop_back();
      curl_easy_reset(e);
      return e;
    }
    return curl_easy_init();
  }

  static size_t OnBody(char* ptr, size_t size, size_t n, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    t->body.insert(t->body.end(), reinterpret_cast<uint8_t*>(ptr), reinterpret_cast<uint8_t*>(ptr) + size * n);
    return size * n;
  }

  static size_t OnHeader(char* ptr, size_t size, size_t n, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    std::string_view line(ptr, size * n);
    if (line.rfind("HTTP/", 0) == 0) {  // a new response (e.g. after 100-continue): forget earlier headers
      t->result.content_range.clear();
      t->result.content_digest.clear();
      t->result.content_type.clear();
      t->result.affinity_error.clear();
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name = Lower(line.substr(0, colon));
    std::string value = Trim(line.substr(colon + 1));
    if (name == "content-range") t->result.content_range = value;
    else if (name == "content-digest") t->result.content_digest = value;
    else if (name == "content-type") t->result.content_type = value;
    else if (name == "affinity-error") t->result.affinity_error = value;
    return size * n;
  }

  void StartAttempt(TransferPtr t) {
    auto now = Clock::now();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t->request.deadline - now);
    if (left.count() <= 0) {
      GiveUp(std::move(t));
      return;
    }
    CURL* e = TakeEasy();
    if (e == nullptr) {
      Finish(std::move(t), Internal("curl_easy_init failed"), FetchError::kConnect, 0);
      return;
    }
    t->easy = e;
    t->attempts++;
    t->body.clear();
    if (t->request.range) t->body.reserve(t->request.range->length);
    t->result = AttemptResult{};
    t->errbuf[0] = '\0';
    std::string url = config_.base_url + t->request.path;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, share_);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    // TLS: always verified, always mutual. There is deliberately no switch to turn this off.
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_CAINFO, config_.ca_file.c_str());
    curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(e, CURLOPT_SSLCERT, config_.cert_file.c_str());
    curl_easy_setopt(e, CURLOPT_SSLKEY, config_.key_file.c_str());
    curl_easy_setopt(e, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(config_.connect_timeout, left).count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(std::min(config_.attempt_timeout, left).count()));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    std::string range;
    if (t->request.range) {
      range = std::to_string(t->request.range->offset) + "-" + std::to_string(t->request.range->end() - 1);
      curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());  // copied by libcurl
    }
    started_++;
    running_count_++;
    Transfer* raw = t.get();
    running_.emplace(raw, std::move(t));
    CURLMcode mc = curl_multi_add_handle(multi_, e);
    if (mc != CURLM_OK) {
      auto node = running_.extract(raw);
      running_count_--;
      RecycleEasy(node.mapped().get());
      Finish(std::move(node.mapped()), Internal(std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc)),
             FetchError::kConnect, 0);
    }
  }

  void RecycleEasy(Transfer* t) {
    if (t->easy == nullptr) return;
    if (idle_.size() < static_cast<size_t>(config_.max_connections) * 2) {
      idle_.push_back(t->easy);
    } else {
      curl_easy_cleanup(t->easy);
    }
    t->easy = nullptr;
  }

  void ReapCompleted() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      CURLcode rc = msg->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
      curl_multi_remove_handle(multi_, e);
      auto node = running_.extract(raw);
      running_count_--;
      TransferPtr t = std::move(node.mapped());
      t->result.curl_code = rc;
      t->result.curl_detail = t->errbuf;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->result.http_status);
      t->result.body = &t->body;
      RecycleEasy(t.get());
      OnAttemptDone(std::move(t));
    }
  }

  void OnAttemptDone(TransferPtr t) {
    auto failure = CheckAttempt(t->request, t->result, config_.ca_file);
    if (!failure) {
      bytes_ += t->body.size();
      FetchOutcome out;
      out.response.http_status = static_cast<int>(t->result.http_status);
      out.response.body = std::move(t->body);
      out.response.content_type = t->result.content_type;
      out.response.attempts = t->attempts;
      if (t->request.range) {
        auto cr = ParseContentRange(t->result.content_range);
        if (cr.ok()) out.response.content_range = *cr;
      }
      t->done(std::move(out));
      return;
    }
    if (t->first_error.empty()) t->first_error = failure->message;
    t->last = *failure;
    spdlog::debug("{} attempt {} failed: {}", t->request.path, t->attempts, failure->message);
    if (!IsRetryable(failure->error)) {
      Finish(std::move(t), Status(StatusCodeFor(failure->error, failure->http_status), failure->message),
             failure->error, failure->http_status);
      return;
    }
    auto wait = retry_.BackoffAfter(t->attempts);
    t->retry_at = Clock::now() + wait;
    if (t->retry_at >= t->request.deadline) {
      GiveUp(std::move(t));
      return;
    }
    retries_++;
    waiting_.push_back(std::move(t));
  }

  // The deadline passed: final kDeadline failure, keeping the first and last causes.
  void GiveUp(TransferPtr t) {
    std::string m;
    if (t->attempts == 0) {
      m = "deadline passed before the request could start (storage host busy or unreachable)";
    } else if (t->attempts == 1) {
      m = "gave up after 1 attempt: " + t->first_error;
    } else {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", SecondsSince(t->submitted));
      m = "gave up after " + std::to_string(t->attempts) + " attempts in " + secs + " s: first: " + t->first_error +
          "; last: " + t->last.message;
    }
    // A request whose only failures were corrupt replies is reported as corruption, not as a timeout.
    FetchError last = t->last.error;
    bool integrity = t->attempts > 0 &&
                     (last == FetchError::kDigestMismatch || last == FetchError::kShortBody || last == FetchError::kProtocol);
    Status s(integrity ? StatusCode::kCorruption : StatusCode::kTimeout, m);
    Finish(std::move(t), s, FetchError::kDeadline, 0);
  }

  void Finish(TransferPtr t, Status status, FetchError error, int http_status) {
    failed_++;
    FetchOutcome out;
    out.status = std::move(status);
    out.failure = FailureDetail{error, http_status, t->attempts};
    t->done(std::move(out));
  }

  void CancelEverything() {
    std::vector<TransferPtr> all;
    {
      std::lock_guard lock(mu_);
      for (auto& t : incoming_) all.push_back(std::move(t));
      incoming_.clear();
    }
    for (auto& t : queue_.RemoveIf([](const TransferPtr&) { return true; })) all.push_back(std::move(t));
    for (auto& t : waiting_) all.push_back(std::move(t));
    waiting_.clear();
    for (auto& [raw, t] : running_) {
      curl_multi_remove_handle(multi_, t->easy);
      RecycleEasy(t.get());
      all.push_back(std::move(t));
    }
    running_.clear();
    running_count_ = 0;
    queued_demand_ = 0;
    queued_prefetch_ = 0;
    for (auto& t : all) Finish(std::move(t), Cancelled("HTTPS client is shutting down"), FetchError::kCancelled, 0);
  }

  const ClientConfig config_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::thread thread_;

  std::mutex mu_;
  bool stop_ = false;                  // guarded by mu_
  std::vector<TransferPtr> incoming_;  // guarded by mu_

  // Owned by the loop thread:
  RequestQueue<TransferPtr> queue_;
  std::unordered_map<Transfer*, TransferPtr> running_;
  std::list<TransferPtr> waiting_;  // backing off before a retry
  std::vector<CURL*> idle_;
  RetryPolicy retry_;

  std::atomic<uint64_t> started_{0}, failed_{0}, retries_{0}, bytes_{0};
  std::atomic<uint64_t> queued_demand_{0}, queued_prefetch_{0}, running_count_{0};
};

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(ClientConfig config) {
  if (config.base_url.rfind("https://", 0) != 0) {
    return InvalidArgument("storage URL must start with https:// (got '" + config.base_url + "')");
  }
  for (const auto& [what, path] : {std::pair<const char*, const std::string&>{"CA file", config.ca_file},
                                   {"client certificate", config.cert_file},
                                   {"client key", config.key_file}}) {
    if (path.empty() || ::access(path.c_str(), R_OK) != 0) {
      return InvalidArgument(std::string(what) + " '" + path + "' is not a readable file");
    }
  }
  if (config.max_connections < 1) return InvalidArgument("max_connections must be at least 1");
  config.reserved_demand_connections = std::clamp(config.reserved_demand_connections, 0, config.max_connections - 1);
  auto impl = std::make_unique<Impl>(std::move(config));
  Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(impl)));
}

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsClient::~HttpsClient() = default;

void HttpsClient::Submit(Request request, Callback done) { impl_->Submit(std::move(request), std::move(done)); }

FetchOutcome HttpsClient::Fetch(Request request) {
  auto promise = std::make_shared<std::promise<FetchOutcome>>();
  auto future = promise->get_future();
  Submit(std::move(request), [promise](FetchOutcome outcome) { promise->set_value(std::move(outcome)); });
  return future.get();
}

ClientStats HttpsClient::Stats() const { return impl_->Stats(); }
const ClientConfig& HttpsClient::config() const { return impl_->config(); }

}  // namespace affinity::fetcher
