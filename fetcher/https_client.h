// HttpsClient: the one HTTPS client of the destination host.
//
// One libcurl multi handle driven by one fetch-loop thread. Requests are
// queued by priority (demand before any prefetch class) and started while
// fewer than `max_connections` transfers are running; prefetch classes may use
// at most `max_connections - reserved_demand_connections`, so a demand miss
// never waits behind a full pipe of prefetches. Connections are kept alive and
// reused. TLS is always verified against `ca_file`; the client authenticates
// with `cert_file`/`key_file` (mutual TLS).
//
// Each request has an overall deadline; within it, retryable failures
// (see fetch_error.h) are retried with exponential backoff and full jitter.
// Range replies must carry a Content-Digest (RFC 9530, sha-256) that matches
// the body and a Content-Range that matches the request, or the attempt fails.
//
// When a deadline passes, the final status is kTimeout (FetchError kDeadline)
// and its message keeps the first and the last root cause and the attempt
// count: "gave up after 5 attempts in 3.0 s: first: connect: ...; last: ...".
// If every attempt failed an integrity check the code is kCorruption instead.
// Final errors (TLS trust, TLS handshake refused, 4xx) end the request at once.
//
// Thread safety: Submit/Fetch/Stats may be called from any thread. Callbacks
// run on the fetch-loop thread and must not block (copy the bytes, signal,
// return); they may call Submit, never Fetch (it returns an error there rather
// than deadlock) and never destroy the client. The destructor fails every
// queued, backing-off and running request with kCancelled and joins; a
// callback that Submits during that gets kCancelled at once.
// REQUIRES: no other thread calls Submit/Fetch once the destructor starts.
// Implementation map: request_queue.h (priorities), retry_policy.h (backoff),
// curl_transfer.h (one attempt), attempt_check.h (its verdict).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/byte_range.h"
#include "common/status.h"
#include "fetcher/fetch_error.h"

namespace affinity::fetcher {

struct ClientConfig {
  std::string base_url;  // "https://127.0.0.1:8443" (no trailing slash)
  std::string ca_file;   // CA that signed the storage host's certificate
  std::string cert_file; // our client certificate (PEM)
  std::string key_file;  // its private key (PEM)
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds attempt_timeout{10000};  // one attempt, all bytes
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  int max_connections = 8;
  int reserved_demand_connections = 2;
  // Called on the fetch thread at the start of every attempt; a non-empty
  // result is sent as the Authorization header ("Bearer <grant>"). So a
  // renewed grant is used from the next attempt on, retries included.
  // Must be fast and thread-safe (e.g. copy a string under a mutex).
  std::function<std::string()> authorization;
};

// Lower value = more urgent. Demand is a VM waiting on a read right now.
enum class Priority : uint8_t { kDemand = 0, kCritical = 1, kEarly = 2, kSuccessor = 3, kBackground = 4 };

struct Request {
  std::string method = "GET";        // GET, HEAD, PUT, POST
  std::string path;                  // "/v1/vms/vm-42/images/root.raw"
  std::optional<ByteRange> range;    // absent: whole object, no digest required
  Priority priority = Priority::kDemand;  // non-demand GETs carry "Affinity-Purpose: prefetch"
  std::chrono::steady_clock::time_point deadline;  // overall, retries included
  std::string body;                  // PUT/POST body (sent as is)
  std::vector<std::string> headers;  // extra "Name: value" lines (e.g. Content-Range of a PUT)
  // false: one attempt only. For a request whose repetition is not
  // harmless (a control-plane POST: begin, commit, ...), where a retry after
  // a lost reply would be refused and hide that the first attempt worked.
  bool idempotent = true;
};

struct Response {
  int http_status = 0;
  std::vector<uint8_t> body;
  std::optional<ByteRange> content_range;  // set for 206 replies
  std::string content_type;
  int attempts = 0;
};

// Details of a failure beyond the Status: which FetchError, which HTTP status.
struct FailureDetail {
  FetchError error = FetchError::kConnect;
  int http_status = 0;
  int attempts = 0;
  std::string server_error;  // the reply's Affinity-Error code ("revoked", ...), if any
};

struct FetchOutcome {
  Status status;                 // ok, or the final error (root cause kept)
  Response response;             // valid when status.ok()
  FailureDetail failure;         // valid when !status.ok()
};

using Callback = std::function<void(FetchOutcome)>;

struct ClientStats {
  uint64_t requests_started = 0;   // attempts, retries included
  uint64_t requests_failed = 0;    // final failures
  uint64_t retries = 0;
  uint64_t bytes_received = 0;     // verified body bytes
  uint64_t queued_demand = 0;      // waiting, not started
  uint64_t queued_prefetch = 0;
  uint64_t running = 0;
  uint64_t backing_off = 0;         // failed, waiting for the next attempt
  uint64_t connections_opened = 0;  // new TCP+TLS connections (the rest reused one)
};

class HttpsClient {
 public:
  // Checks that the CA/cert/key files are readable and starts the fetch loop.
  // kInvalidArgument names the bad file or option.
  static Result<std::unique_ptr<HttpsClient>> Create(ClientConfig config);

  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Queues a request; `done` is called exactly once, on the fetch thread.
  // A request without a deadline, with an empty range or a path not starting
  // with '/' fails with kInvalidArgument (FetchError kClientError).
  void Submit(Request request, Callback done);

  // Blocking convenience for control-plane calls (listings, metrics).
  FetchOutcome Fetch(Request request);

  ClientStats Stats() const;

  const ClientConfig& config() const;

 private:
  class Impl;
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace affinity::fetcher
