#include "fetcher/fetch_error.h"

namespace affinity::fetcher {

std::string_view FetchErrorName(FetchError e) {
  switch (e) {
    case FetchError::kConnect: return "connect";
    case FetchError::kTlsUntrusted: return "tls_untrusted";
    case FetchError::kTlsHandshake: return "tls_handshake";
    case FetchError::kTimeout: return "timeout";
    case FetchError::kServerError: return "server_error";
    case FetchError::kClientError: return "client_error";
    case FetchError::kDigestMismatch: return "digest_mismatch";
    case FetchError::kShortBody: return "short_body";
    case FetchError::kProtocol: return "protocol";
    case FetchError::kDeadline: return "deadline";
    case FetchError::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool IsRetryable(FetchError e) {
  switch (e) {
    case FetchError::kConnect:
    case FetchError::kTimeout:
    case FetchError::kServerError:
    case FetchError::kDigestMismatch:
    case FetchError::kShortBody:
    case FetchError::kProtocol: return true;
    case FetchError::kTlsUntrusted:
    case FetchError::kTlsHandshake:
    case FetchError::kClientError:
    case FetchError::kDeadline:
    case FetchError::kCancelled: return false;
  }
  return false;
}

StatusCode StatusCodeFor(FetchError e, int http_status) {
  switch (e) {
    case FetchError::kClientError:
      if (http_status == 401 || http_status == 403) return StatusCode::kPermissionDenied;
      if (http_status == 404) return StatusCode::kNotFound;
      if (http_status == 416) return StatusCode::kOutOfRange;
      return StatusCode::kInvalidArgument;
    case FetchError::kTlsUntrusted:
    case FetchError::kTlsHandshake: return StatusCode::kPermissionDenied;
    case FetchError::kDigestMismatch:
    case FetchError::kShortBody:
    case FetchError::kProtocol: return StatusCode::kCorruption;
    case FetchError::kDeadline: return StatusCode::kTimeout;
    case FetchError::kCancelled: return StatusCode::kCancelled;
    case FetchError::kConnect:
    case FetchError::kTimeout:
    case FetchError::kServerError: return StatusCode::kUnavailable;
  }
  return StatusCode::kUnavailable;
}

}  // namespace affinity::fetcher
