// The fetch loop.
//
// One thread owns the CURLM and everything below "owned by the loop thread".
// Each turn it:
//   1. takes newly submitted requests (the only state shared with other
//      threads, under mu_) and queues them by priority;
//   2. requeues requests whose backoff wait is over (waiting_, a timer list
//      ordered by start time) and fails queued requests whose deadline passed;
//   3. starts queued requests while RequestQueue allows (demand reservation);
//   4. drives curl (curl_multi_perform) and judges every finished attempt:
//      success -> callback; final failure -> callback; retryable -> waiting_
//      with a jittered backoff clipped to the deadline, or give up;
//   5. sleeps in curl_multi_poll until socket activity, curl's own timers,
//      the next backoff or queued deadline, or curl_multi_wakeup (Submit and
//      the destructor). If step 4 finished anything it skips the sleep so a
//      freed connection is used at once.
// No lock is held while a callback runs, so callbacks may Submit again.
#include "fetcher/https_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "fetcher/attempt_check.h"
#include "fetcher/curl_transfer.h"
#include "fetcher/request_queue.h"
#include "fetcher/retry_policy.h"

namespace affinity::fetcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The loop wakes at least this often even when nothing is due (belt and braces:
// every real wake-up has its own trigger).
constexpr milliseconds kMaxPollWait{1000};
// A retry is not started with less than this left before the deadline.
constexpr milliseconds kMinAttemptTime{50};

// curl_global_init is not thread-safe; do it once, before any client exists.
void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::chrono::duration<double>(d).count());
  return buf;
}

bool IsIntegrityFailure(FetchError e) {
  return e == FetchError::kDigestMismatch || e == FetchError::kShortBody || e == FetchError::kProtocol;
}

// kInvalidArgument unless `path` names a readable regular file.
Status CheckReadableFile(const char* what, const std::string& path) {
  if (path.empty()) return InvalidArgument(std::string(what) + " is not set");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return InvalidArgument(std::string(what) + " '" + path + "' is not readable: " + std::strerror(errno));
  }
  struct stat st {};
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) return InvalidArgument(std::string(what) + " '" + path + "' is not a regular file");
  return Status::Ok();
}

}  // namespace

// One request through all its attempts.
struct Transfer {
  Request request;
  Callback done;
  Clock::time_point submitted = Clock::now();
  int attempts = 0;
  bool only_integrity_failures = true;  // every failed attempt failed an integrity check
  std::optional<AttemptFailure> first, last;
  CurlAttempt attempt;  // the current (or last) attempt
};
using TransferPtr = std::unique_ptr<Transfer>;

class HttpsClient::Impl {
 public:
  explicit Impl(ClientConfig config)
      : config_(std::move(config)),
        queue_(config_.max_connections, config_.reserved_demand_connections),
        pool_(std::make_unique<EasyPool>(static_cast<size_t>(config_.max_connections))),
        retry_(config_.initial_backoff, config_.max_backoff,
               (static_cast<uint64_t>(std::random_device{}()) << 32) ^ static_cast<uint64_t>(::getpid()),
               kMinAttemptTime) {}

  Status Init() {
    GlobalInitOnce();
    multi_ = curl_multi_init();
    share_ = curl_share_init();
    if (multi_ == nullptr || share_ == nullptr) return Internal("curl_multi_init/curl_share_init failed");
    // Only the loop thread uses the share handle, so it needs no lock callbacks.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    const long max = config_.max_connections;
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, max);
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, max);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, max);  // idle connections kept alive
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
    // Easy handles first (they reference the share handle), then the multi, then the share.
    pool_.reset();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
  }

  void Submit(Request request, Callback done) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = done ? std::move(done) : [](FetchOutcome) {};
    bool stopped;
    {
      std::lock_guard lock(mu_);
      stopped = stop_;
      if (!stopped) {
        CountQueued(t->request.priority, +1);
        incoming_.push_back(std::move(t));
      }
    }
    if (stopped) {
      Finish(std::move(t), Cancelled("HTTPS client is shutting down"), FetchError::kCancelled, 0);
      return;
    }
    curl_multi_wakeup(multi_);
  }

  bool OnLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  ClientStats Stats() const {
    ClientStats s;
    s.requests_started = started_.load();
    s.requests_failed = failed_.load();
    s.retries = retries_.load();
    s.bytes_received = bytes_.load();
    s.queued_demand = queued_demand_.load();
    s.queued_prefetch = queued_prefetch_.load();
    s.running = running_count_.load();
    s.backing_off = backing_off_.load();
    s.connections_opened = connections_.load();
    return s;
  }

  const ClientConfig& config() const { return config_; }

 private:
  void Loop() {
    for (;;) {
      std::vector<TransferPtr> incoming;
      {
        std::lock_guard lock(mu_);
        if (stop_) break;
        incoming.swap(incoming_);
      }
      for (auto& t : incoming) Admit(std::move(t));
      const auto now = Clock::now();
      PromoteDueRetries(now);
      ExpireQueued(now);
      StartWhatFits();
      int still_running = 0;
      CURLMcode mc = curl_multi_perform(multi_, &still_running);
      if (mc != CURLM_OK) spdlog::error("curl_multi_perform: {}", curl_multi_strerror(mc));
      if (ReapCompleted() > 0) continue;  // connections freed: fill them before sleeping
      mc = curl_multi_poll(multi_, nullptr, 0, PollTimeoutMs(), nullptr);
      if (mc != CURLM_OK) spdlog::error("curl_multi_poll: {}", curl_multi_strerror(mc));
    }
    CancelEverything();
  }

  void CountQueued(Priority p, int delta) {
    auto& counter = p == Priority::kDemand ? queued_demand_ : queued_prefetch_;
    if (delta > 0) counter++;
    else counter--;
  }

  // Validates a new request and queues it, or fails it at once.
  void Admit(TransferPtr t) {
    const Request& r = t->request;
    std::string bad;
    if (r.deadline == Clock::time_point{}) bad = "request for " + r.path + " has no deadline";
    else if (r.path.empty() || r.path.front() != '/') bad = "request path '" + r.path + "' must start with '/'";
    else if (r.range && r.range->length == 0) bad = "request for " + r.path + " asks for an empty range";
    if (!bad.empty()) {
      CountQueued(r.priority, -1);
      Finish(std::move(t), InvalidArgument(bad), FetchError::kClientError, 0);
      return;
    }
    Priority p = r.priority;
    auto deadline = r.deadline;
    queue_.Push(p, deadline, std::move(t));
  }

  int PollTimeoutMs() const {
    const auto now = Clock::now();
    auto next = now + kMaxPollWait;
    if (!waiting_.empty()) next = std::min(next, waiting_.begin()->first);
    if (auto d = queue_.EarliestDeadline()) next = std::min(next, *d);
    auto ms = std::chrono::ceil<milliseconds>(next - now).count();
    return static_cast<int>(std::clamp<int64_t>(ms, 0, kMaxPollWait.count()));
  }

  void PromoteDueRetries(Clock::time_point now) {
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      TransferPtr t = std::move(waiting_.begin()->second);
      waiting_.erase(waiting_.begin());
      backing_off_--;
      Priority p = t->request.priority;
      auto deadline = t->request.deadline;
      CountQueued(p, +1);
      queue_.Push(p, deadline, std::move(t));
    }
  }

  void ExpireQueued(Clock::time_point now) {
    for (auto& t : queue_.TakeExpired(now)) {
      CountQueued(t->request.priority, -1);
      GiveUp(std::move(t));
    }
  }

  void StartWhatFits() {
    while (auto next = queue_.PopStartable(static_cast<int>(running_.size()))) {
      TransferPtr t = std::move(*next);
      CountQueued(t->request.priority, -1);
      StartAttempt(std::move(t));
    }
  }

  void StartAttempt(TransferPtr t) {
    auto left = std::chrono::duration_cast<milliseconds>(t->request.deadline - Clock::now());
    if (left.count() <= 0) {
      GiveUp(std::move(t));
      return;
    }
    CURL* easy = pool_->Take();
    if (easy == nullptr) {
      Finish(std::move(t), Internal("curl_easy_init failed"), FetchError::kConnect, 0);
      return;
    }
    Status s = t->attempt.Prepare(easy, share_, config_, t->request, left);
    if (s.ok()) {
      CURLMcode mc = curl_multi_add_handle(multi_, easy);
      if (mc != CURLM_OK) s = Internal(std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc));
    }
    if (!s.ok()) {
      pool_->Give(t->attempt.ReleaseEasy());
      Finish(std::move(t), s, FetchError::kConnect, 0);
      return;
    }
    t->attempts++;
    started_++;
    running_count_++;
    running_.emplace(easy, std::move(t));
  }

  // Judges every finished attempt; returns how many finished.
  int ReapCompleted() {
    int finished = 0;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;  // read before remove_handle invalidates msg
      CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi_, easy);
      auto node = running_.extract(easy);
      if (node.empty()) {  // not ours; cannot happen
        pool_->Give(easy);
        continue;
      }
      running_count_--;
      finished++;
      TransferPtr t = std::move(node.mapped());
      AttemptResult result = t->attempt.Finish(code);
      connections_ += static_cast<uint64_t>(std::max(0L, t->attempt.new_connections()));
      std::optional<AttemptFailure> failure = CheckAttempt(t->request, result, config_.ca_file);
      pool_->Give(t->attempt.ReleaseEasy());
      if (failure) {
        OnFailedAttempt(std::move(t), std::move(*failure));
      } else {
        Succeed(std::move(t), result);
      }
    }
    return finished;
  }

  void Succeed(TransferPtr t, const AttemptResult& result) {
    FetchOutcome out;
    out.response.http_status = static_cast<int>(result.http_status);
    out.response.content_type = result.content_type;
    out.response.attempts = t->attempts;
    if (t->request.range) {
      auto cr = ParseContentRange(result.content_range);
      if (cr.ok()) out.response.content_range = *cr;
    }
    out.response.body = t->attempt.TakeBody();
    bytes_ += out.response.body.size();
    t->done(std::move(out));
  }

  void OnFailedAttempt(TransferPtr t, AttemptFailure failure) {
    spdlog::debug("{} {} attempt {} failed ({}): {}", t->request.method, t->request.path, t->attempts, FetchErrorName(failure.error),
                  failure.message);
    if (!IsIntegrityFailure(failure.error)) t->only_integrity_failures = false;
    if (!t->first) t->first = failure;
    t->last = failure;
    if (!IsRetryable(failure.error) || !t->request.idempotent) {
      std::string m = failure.message;
      if (t->attempts > 1 && t->first->message != m) {
        m += " (attempt " + std::to_string(t->attempts) + "; first failure: " + t->first->message + ")";
      }
      Finish(std::move(t), Status(StatusCodeFor(failure.error, failure.http_status), m), failure.error,
             failure.http_status, failure.server_error);
      return;
    }
    auto at = retry_.NextAttemptAt(t->attempts, Clock::now(), t->request.deadline);
    if (!at) {
      GiveUp(std::move(t));
      return;
    }
    retries_++;
    backing_off_++;
    waiting_.emplace(*at, std::move(t));
  }

  // The deadline leaves no time for another attempt: a final kDeadline
  // failure that keeps the first and the last root cause.
  void GiveUp(TransferPtr t) {
    const std::string elapsed = Seconds(Clock::now() - t->submitted);
    std::string m;
    if (t->attempts == 0 || !t->first) {
      m = "deadline passed after " + elapsed + " s in the queue, before the request could start (all " +
          std::to_string(config_.max_connections) + " connections to the storage host busy)";
    } else if (t->attempts == 1) {
      m = "gave up after 1 attempt in " + elapsed + " s: " + t->last->message;
    } else {
      m = "gave up after " + std::to_string(t->attempts) + " attempts in " + elapsed + " s: first: " +
          t->first->message + "; last: " + t->last->message;
    }
    // A request whose every reply was corrupt is reported as corruption, not as a timeout.
    bool corrupt = t->attempts > 0 && t->first && t->only_integrity_failures;
    int http = t->last ? t->last->http_status : 0;
    std::string server_error = t->last ? t->last->server_error : std::string();
    Finish(std::move(t), Status(corrupt ? StatusCode::kCorruption : StatusCode::kTimeout, m), FetchError::kDeadline,
           http, server_error);
  }

  void Finish(TransferPtr t, Status status, FetchError error, int http_status, std::string server_error = {}) {
    failed_++;
    FetchOutcome out;
    out.status = std::move(status);
    out.failure = FailureDetail{error, http_status, t->attempts, std::move(server_error)};
    t->done(std::move(out));
  }

  void CancelEverything() {
    std::vector<TransferPtr> all;
    {
      std::lock_guard lock(mu_);
      for (auto& t : incoming_) all.push_back(std::move(t));
      incoming_.clear();
    }
    for (auto& t : queue_.TakeAll()) all.push_back(std::move(t));
    for (auto& [at, t] : waiting_) all.push_back(std::move(t));
    waiting_.clear();
    for (auto& [easy, t] : running_) {
      curl_multi_remove_handle(multi_, easy);
      pool_->Give(t->attempt.ReleaseEasy());
      all.push_back(std::move(t));
    }
    running_.clear();
    running_count_ = 0;
    queued_demand_ = 0;
    queued_prefetch_ = 0;
    backing_off_ = 0;
    for (auto& t : all) Finish(std::move(t), Cancelled("HTTPS client is shutting down"), FetchError::kCancelled, 0);
  }

  // Constant after construction.
  const ClientConfig config_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::thread thread_;

  std::mutex mu_;
  bool stop_ = false;                  // guarded by mu_
  std::vector<TransferPtr> incoming_;  // guarded by mu_

  // Owned by the loop thread.
  RequestQueue<TransferPtr> queue_;
  std::unordered_map<CURL*, TransferPtr> running_;
  std::multimap<Clock::time_point, TransferPtr> waiting_;  // backing off, by next start time
  std::unique_ptr<EasyPool> pool_;  // reset before the multi and share handles are cleaned up
  RetryPolicy retry_;

  // Written by the loop thread (and Submit), read by Stats() from any thread.
  std::atomic<uint64_t> started_{0}, failed_{0}, retries_{0}, bytes_{0}, connections_{0};
  std::atomic<uint64_t> queued_demand_{0}, queued_prefetch_{0}, running_count_{0}, backing_off_{0};
};

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(ClientConfig config) {
  if (config.base_url.rfind("https://", 0) != 0) {
    return InvalidArgument("storage URL must start with https:// (got '" + config.base_url + "')");
  }
  while (config.base_url.size() > 8 && config.base_url.back() == '/') config.base_url.pop_back();
  for (const auto& [what, path] : {std::pair<const char*, const std::string*>{"CA file", &config.ca_file},
                                   {"client certificate", &config.cert_file},
                                   {"client key", &config.key_file}}) {
    Status s = CheckReadableFile(what, *path);
    if (!s.ok()) return s;
  }
  if (config.max_connections < 1) return InvalidArgument("max_connections must be at least 1");
  if (config.connect_timeout.count() <= 0 || config.attempt_timeout.count() <= 0) {
    return InvalidArgument("connect_timeout and attempt_timeout must be positive");
  }
  if (config.initial_backoff.count() < 0 || config.max_backoff < config.initial_backoff) {
    return InvalidArgument("backoff must satisfy 0 <= initial_backoff <= max_backoff");
  }
  // At least one connection stays usable by prefetch.
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
  if (impl_->OnLoopThread()) {
    FetchOutcome out;
    out.status = InvalidArgument("HttpsClient::Fetch called from a fetch callback would deadlock; use Submit");
    out.failure = FailureDetail{FetchError::kClientError, 0, 0};
    return out;
  }
  auto promise = std::make_shared<std::promise<FetchOutcome>>();
  auto future = promise->get_future();
  Submit(std::move(request), [promise](FetchOutcome outcome) { promise->set_value(std::move(outcome)); });
  return future.get();
}

ClientStats HttpsClient::Stats() const { return impl_->Stats(); }
const ClientConfig& HttpsClient::config() const { return impl_->config(); }

}  // namespace affinity::fetcher
