#include "fetcher/curl_transfer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/byte_range.h"

namespace affinity::fetcher {
namespace {

// An error reply's body is only read for its reason; keep a bounded prefix.
constexpr size_t kMaxErrorBody = 64 * 1024;

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

}  // namespace

EasyPool::~EasyPool() {
  for (CURL* e : idle_) curl_easy_cleanup(e);
}

CURL* EasyPool::Take() {
  if (idle_.empty()) return curl_easy_init();
  CURL* e = idle_.back();
  idle_.pop_back();
  return e;
}

void EasyPool::Give(CURL* easy) {
  if (easy == nullptr) return;
  // Reset now, not on Take: the handle must not keep pointers into the
  // attempt that used it (error buffer, callback data) once that is gone.
  // Live connections and the TLS session cache survive a reset.
  curl_easy_reset(easy);
  if (idle_.size() < max_idle_) {
    idle_.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
}

CurlAttempt::~CurlAttempt() {
  if (headers_ != nullptr) curl_slist_free_all(headers_);
}

CURL* CurlAttempt::ReleaseEasy() {
  CURL* e = easy_;
  easy_ = nullptr;
  return e;
}

Status CurlAttempt::Prepare(CURL* easy, CURLSH* share, const ClientConfig& config, const Request& request,
                            std::chrono::milliseconds time_left) {
  easy_ = easy;
  body_.clear();
  body_hasher_.reset();
  result_ = AttemptResult{};
  errbuf_[0] = '\0';
  new_connections_ = 0;
  if (headers_ != nullptr) {
    curl_slist_free_all(headers_);
    headers_ = nullptr;
  }
  body_limit_ = UINT64_MAX;
  status_ = 0;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers_, line.c_str());
    if (next == nullptr) return false;
    headers_ = next;
    return true;
  };
  if (request.range) {
    if (!add_header("Range: " + FormatRangeHeader(*request.range))) return Internal("curl_slist_append failed");
    body_limit_ = request.range->length;
    body_.reserve(request.range->length);
  }
  if (config.authorization) {
    std::string auth = config.authorization();
    if (!auth.empty() && !add_header("Authorization: " + auth)) return Internal("curl_slist_append failed");
  }
  if (request.priority != Priority::kDemand && !add_header("Affinity-Purpose: prefetch")) {
    return Internal("curl_slist_append failed");
  }
  for (const std::string& h : request.headers) {
    if (!add_header(h)) return Internal("curl_slist_append failed");
  }
  // No "Expect: 100-continue" round trip for a PUT/POST body.
  if (!request.body.empty() && !add_header("Expect:")) return Internal("curl_slist_append failed");
  url_ = config.base_url + request.path;
  const long attempt_ms = std::max<long>(1, std::min(config.attempt_timeout, time_left).count());
  const long connect_ms = std::max<long>(1, std::min(config.connect_timeout, time_left).count());

  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, opt, value);
  };
  set(CURLOPT_URL, url_.c_str());
  set(CURLOPT_PROTOCOLS_STR, "https");
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  if (share != nullptr) set(CURLOPT_SHARE, share);
  // TLS: always verified, always mutual. There is deliberately no switch to turn this off.
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  set(CURLOPT_CAINFO, config.ca_file.c_str());
  set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  set(CURLOPT_SSLCERT, config.cert_file.c_str());
  set(CURLOPT_SSLKEY, config.key_file.c_str());
  set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  set(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  set(CURLOPT_TIMEOUT_MS, attempt_ms);
  set(CURLOPT_ERRORBUFFER, errbuf_);
  set(CURLOPT_HTTPHEADER, headers_);
  set(CURLOPT_WRITEFUNCTION, &CurlAttempt::OnBody);
  set(CURLOPT_WRITEDATA, static_cast<void*>(this));
  set(CURLOPT_HEADERFUNCTION, &CurlAttempt::OnHeader);
  set(CURLOPT_HEADERDATA, static_cast<void*>(this));
  if (request.method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST" || request.method == "PUT") {
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    set(CURLOPT_POSTFIELDS, request.body.data());  // the Request outlives the attempt
    if (request.method == "PUT") set(CURLOPT_CUSTOMREQUEST, "PUT");
  } else if (request.method != "GET") {
    return InvalidArgument("unsupported HTTP method " + request.method);
  } else {
    body_hasher_ = std::make_unique<Sha256Hasher>();
  }
  if (rc != CURLE_OK) return Internal(std::string("curl_easy_setopt: ") + curl_easy_strerror(rc));
  return Status::Ok();
}

AttemptResult CurlAttempt::Finish(CURLcode code) {
  AttemptResult r = std::move(result_);
  result_ = AttemptResult{};
  r.curl_code = code;
  r.curl_detail = errbuf_;
  if (code == CURLE_COULDNT_CONNECT) {
    // curl's text says "Couldn't connect to server"; the errno says why (refused, unreachable, ...).
    long os_errno = 0;
    curl_easy_getinfo(easy_, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno != 0) {
      std::string why = std::strerror(static_cast<int>(os_errno));
      if (r.curl_detail.find(why) == std::string::npos) r.curl_detail += (r.curl_detail.empty() ? "" : ": ") + why;
    }
  }
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.http_status);
  curl_easy_getinfo(easy_, CURLINFO_NUM_CONNECTS, &new_connections_);
  r.body = &body_;
  if (body_hasher_ != nullptr && status_ >= 200 && status_ < 300) r.body_sha256 = body_hasher_->Final();
  body_hasher_.reset();
  return r;
}

size_t CurlAttempt::OnBody(char* data, size_t size, size_t n, void* self) {
  auto* a = static_cast<CurlAttempt*>(self);
  size_t bytes = size * n;
  if (a->status_ < 200 || a->status_ >= 300) {
    // An error (or unexpected) reply: keep what fits for the message, drop the rest.
    size_t keep = std::min(bytes, kMaxErrorBody - std::min(kMaxErrorBody, a->body_.size()));
    a->body_.insert(a->body_.end(), reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + keep);
    return bytes;
  }
  if (a->body_.size() + bytes > a->body_limit_) {
    a->result_.body_too_long = true;
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  a->body_.insert(a->body_.end(), reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + bytes);
  if (a->body_hasher_ != nullptr) a->body_hasher_->Update(std::span(reinterpret_cast<const uint8_t*>(data), bytes));
  return bytes;
}

size_t CurlAttempt::OnHeader(char* data, size_t size, size_t n, void* self) {
  auto* a = static_cast<CurlAttempt*>(self);
  size_t bytes = size * n;
  std::string_view line(data, bytes);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (e.g. after 100-continue): only the final one counts.
    a->result_ = AttemptResult{};
    size_t space = line.find(' ');
    a->status_ = space == std::string_view::npos ? 0 : std::atol(std::string(line.substr(space + 1, 3)).c_str());
    return bytes;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  std::string name = Lower(line.substr(0, colon));
  std::string value = Trim(line.substr(colon + 1));
  if (name == "content-range") a->result_.content_range = value;
  else if (name == "content-digest") a->result_.content_digest = value;
  else if (name == "content-type") a->result_.content_type = value;
  else if (name == "affinity-error") a->result_.affinity_error = value;
  return bytes;
}

}  // namespace affinity::fetcher
