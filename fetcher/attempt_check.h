// CheckAttempt: the verdict on one finished HTTP attempt.
//
// Turns what curl and the server produced into either "good" or a typed
// AttemptFailure whose message names the root cause: the curl error with
// curl's own detail (CURLOPT_ERRORBUFFER), the server's machine-readable
// reason (Affinity-Error header and JSON {"error","reason"} body), or the
// integrity check that failed. Retry branches on AttemptFailure::error only.
//
// Rules (docs/protocol.md):
//  * 5xx -> kServerError (retryable); 4xx -> kClientError (final).
//  * Range request: 206 with a Content-Range that starts where we asked and
//    ends at or before our end (the server clamps at EOF); body exactly that
//    long (fewer bytes: kShortBody, more: kProtocol); a sha-256
//    Content-Digest that matches the body (absent/malformed: kProtocol,
//    different: kDigestMismatch).
//  * Whole-object request: any 2xx (200, 204 for a PUT); a Content-Digest is
//    optional but checked when present.
//
// Thread safety: pure functions.
#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

#include "common/digest.h"
#include "fetcher/fetch_error.h"
#include "fetcher/https_client.h"

namespace affinity::fetcher {

// What one attempt produced, as captured by CurlAttempt (curl_transfer.h).
struct AttemptResult {
  CURLcode curl_code = CURLE_OK;
  std::string curl_detail;  // CURLOPT_ERRORBUFFER; may be empty
  long http_status = 0;
  std::string content_range, content_digest, content_type, affinity_error;
  bool body_too_long = false;  // the server sent more than the range asked for; we stopped reading
  const std::vector<uint8_t>* body = nullptr;  // never null once captured
  std::optional<Sha256Bytes> body_sha256;      // of *body, when it was hashed while it arrived
};

struct AttemptFailure {
  FetchError error = FetchError::kConnect;
  int http_status = 0;
  std::string message;
  std::string server_error;  // Affinity-Error (or the JSON "error") of a 4xx/5xx reply
};

// Classifies a failed curl transfer (code != CURLE_OK). `detail` is curl's
// error buffer; `ca_file` is named in trust failures so the user knows which
// file to fix.
AttemptFailure ClassifyCurlError(CURLcode code, const std::string& detail, const std::string& ca_file);

// nullopt: the attempt succeeded and the body may be used.
std::optional<AttemptFailure> CheckAttempt(const Request& request, const AttemptResult& result,
                                           const std::string& ca_file);

}  // namespace affinity::fetcher
