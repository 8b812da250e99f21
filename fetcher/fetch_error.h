// The typed reason a fetch failed, and what retry does with it.
//
// Retry and failover branch on this, never on message text. Each failure
// keeps its original detail (curl's message, the server's reason) so the error
// a user finally sees names the root cause, not "retries exhausted".
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity::fetcher {

enum class FetchError {
  kConnect,         // refused / unreachable / reset before a reply: retryable
  kTlsUntrusted,    // server certificate not trusted by our CA file: final
  kTlsHandshake,    // handshake failed (e.g. our client cert refused): final
  kTimeout,         // one attempt exceeded its timeout: retryable
  kServerError,     // 5xx, or connection dropped mid-body: retryable
  kClientError,     // 4xx: final (the request itself is wrong or forbidden)
  kDigestMismatch,  // Content-Digest does not match the body: retryable
  kShortBody,       // fewer bytes than the range asked for: retryable
  kProtocol,        // malformed reply (no digest, bad Content-Range): retryable
  kDeadline,        // the caller's overall deadline passed: final
  kCancelled,       // client shutting down: final
};

std::string_view FetchErrorName(FetchError e);
bool IsRetryable(FetchError e);

// Maps to a Status code: 401/403 -> kPermissionDenied, 404 -> kNotFound,
// 416 -> kOutOfRange, digest/short/protocol -> kCorruption,
// TLS -> kPermissionDenied, deadline -> kTimeout, others -> kUnavailable.
StatusCode StatusCodeFor(FetchError e, int http_status);

}  // namespace affinity::fetcher
