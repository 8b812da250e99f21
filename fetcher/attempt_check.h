// CheckAttempt: the verdict on one finished HTTP attempt.
//
// Turns what curl and the server produced into either "good" or a typed
// AttemptFailure with a message that names the root cause: the curl error and
// its detail, the server's machine-readable reason (Affinity-Error header /
// JSON "reason"), or the integrity check that failed. Range replies must be
// 206 with a Content-Range starting where we asked and a sha-256
// Content-Digest matching the body; a server may clamp the end at EOF.
//
// Thread safety: a pure function.
#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

#include "fetcher/fetch_error.h"
#include "fetcher/https_client.h"

namespace affinity::fetcher {

struct AttemptResult {
  CURLcode curl_code = CURLE_OK;
  std::string curl_detail;  // CURLOPT_ERRORBUFFER
  long http_status = 0;
  std::string content_range, content_digest, content_type, affinity_error;
  const std::vector<uint8_t>* body = nullptr;
};

struct AttemptFailure {
  FetchError error;
  int http_status = 0;
  std::string message;
};

std::optional<AttemptFailure> CheckAttempt(const Request& request, const AttemptResult& result,
                                           const std::string& ca_file);

}  // namespace affinity::fetcher
