// CurlAttempt and EasyPool: one HTTP attempt on one libcurl easy handle.
//
// EasyPool keeps finished easy handles for the next attempt instead of
// destroying them: a handle carries its TLS session cache, and the multi
// handle's connection cache keeps the TCP+TLS connections alive, so
// consecutive requests to the storage host reuse both.
//
// CurlAttempt sets every option of one attempt (URL, Range, mutual TLS with
// verification always on, timeouts), captures the headers we check and the
// body, and afterwards reports an AttemptResult for CheckAttempt. It never
// turns TLS verification off; there is no option to.
//
// Timeouts: CURLOPT_CONNECTTIMEOUT_MS bounds the TCP+TLS set-up and
// CURLOPT_TIMEOUT_MS = min(attempt_timeout, time left to the deadline) bounds
// the whole attempt, so a server that stalls mid-body is cut off by it.
//
// Thread safety: none; both are used by the fetch-loop thread only. A
// CurlAttempt must stay at one address while its handle is in the multi
// (curl holds a pointer to it for the callbacks).
// Failure: Prepare returns kInternal when curl refuses an option (a libcurl
// built without a feature we need); transfer failures appear in the result.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/status.h"
#include "fetcher/attempt_check.h"
#include "fetcher/https_client.h"

namespace affinity::fetcher {

class EasyPool {
 public:
  explicit EasyPool(size_t max_idle) : max_idle_(max_idle) {}
  ~EasyPool();
  EasyPool(const EasyPool&) = delete;
  EasyPool& operator=(const EasyPool&) = delete;

  // A handle with default options (reused or new); nullptr if curl cannot make one.
  CURL* Take();
  // Takes back a handle that is no longer in any multi handle.
  void Give(CURL* easy);

 private:
  size_t max_idle_;
  std::vector<CURL*> idle_;
};

class CurlAttempt {
 public:
  CurlAttempt() = default;
  ~CurlAttempt();
  CurlAttempt(const CurlAttempt&) = delete;
  CurlAttempt& operator=(const CurlAttempt&) = delete;

  // Configures `easy` for `request` against `config`. `share` holds the TLS
  // session and DNS caches common to all handles (may be null).
  Status Prepare(CURL* easy, CURLSH* share, const ClientConfig& config, const Request& request,
                 std::chrono::milliseconds time_left);

  // After curl reported the transfer done with `code`.
  AttemptResult Finish(CURLcode code);

  // New connections this attempt had to open (0 = reused a kept-alive one).
  long new_connections() const { return new_connections_; }

  std::vector<uint8_t> TakeBody() { return std::move(body_); }
  CURL* easy() const { return easy_; }
  // Gives the handle back to the caller (for EasyPool::Give) and forgets it.
  CURL* ReleaseEasy();

 private:
  static size_t OnBody(char* data, size_t size, size_t n, void* self);
  static size_t OnHeader(char* data, size_t size, size_t n, void* self);

  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string url_;
  std::vector<uint8_t> body_;
  uint64_t body_limit_ = UINT64_MAX;  // a 2xx range reply longer than this is refused
  // A 2xx body is hashed as it arrives, so the check after the last byte does
  // not pay for a second pass (it overlaps with the server still sending).
  std::unique_ptr<Sha256Hasher> body_hasher_;
  long status_ = 0;                   // from the status line, for OnBody
  long new_connections_ = 0;
  AttemptResult result_;
  char errbuf_[CURL_ERROR_SIZE] = {};
};

}  // namespace affinity::fetcher
