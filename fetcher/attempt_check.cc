#include "fetcher/attempt_check.h"

#include <nlohmann/json.hpp>

#include "common/byte_range.h"
#include "common/digest.h"

namespace affinity::fetcher {
namespace {

std::string CurlMessage(const AttemptResult& r) {
  std::string m = curl_easy_strerror(r.curl_code);
  if (!r.curl_detail.empty()) m += " (" + r.curl_detail + ")";
  return m;
}

AttemptFailure FromCurl(const AttemptResult& r, const std::string& ca_file) {
  switch (r.curl_code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return {FetchError::kTlsUntrusted, 0,
              "TLS: the storage host's certificate is not trusted by --ca-file " + ca_file + ": " + CurlMessage(r)};
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
      return {FetchError::kTlsHandshake, 0,
              "TLS handshake with the storage host failed (is this host's client certificate signed by the CA "
              "the storage host trusts?): " + CurlMessage(r)};
    case CURLE_OPERATION_TIMEDOUT: return {FetchError::kTimeout, 0, "timed out: " + CurlMessage(r)};
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
      return {FetchError::kServerError, 0, "connection dropped: " + CurlMessage(r)};
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return {FetchError::kConnect, 0, "connect: " + CurlMessage(r)};
    default: return {FetchError::kConnect, 0, CurlMessage(r)};
  }
}

std::string ServerReason(const AttemptResult& r) {
  std::string reason = r.affinity_error;
  if (r.body != nullptr && !r.body->empty()) {
    auto doc = nlohmann::json::parse(r.body->begin(), r.body->end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
      if (doc.contains("error") && doc["error"].is_string() && reason.empty()) reason = doc["error"].get<std::string>();
      if (doc.contains("reason") && doc["reason"].is_string()) reason += ": " + doc["reason"].get<std::string>();
    }
  }
  return reason.empty() ? "no reason given" : reason;
}

}  // namespace

std::optional<AttemptFailure> CheckAttempt(const Request& request, const AttemptResult& r,
                                           const std::string& ca_file) {
  if (r.curl_code != CURLE_OK) return FromCurl(r, ca_file);
  int http = static_cast<int>(r.http_status);
  if (http >= 500) return AttemptFailure{FetchError::kServerError, http, "HTTP " + std::to_string(http) + " " + ServerReason(r)};
  if (http >= 400) return AttemptFailure{FetchError::kClientError, http, "HTTP " + std::to_string(http) + " " + ServerReason(r)};
  const std::vector<uint8_t>& body = *r.body;

  if (request.range) {
    if (http != 206) {
      return AttemptFailure{FetchError::kProtocol, http, "expected 206 for a range request, got HTTP " + std::to_string(http)};
    }
    auto cr = ParseContentRange(r.content_range);
    if (!cr.ok()) return AttemptFailure{FetchError::kProtocol, http, "bad Content-Range '" + r.content_range + "'"};
    if (cr->offset != request.range->offset || cr->length > request.range->length) {
      return AttemptFailure{FetchError::kProtocol, http,
                            "Content-Range '" + r.content_range + "' does not match the request " +
                                FormatRangeHeader(*request.range)};
    }
    if (body.size() != cr->length) {
      return AttemptFailure{FetchError::kShortBody, http,
                            "short body: " + std::to_string(body.size()) + " of " + std::to_string(cr->length) + " bytes"};
    }
  } else if (http != 200) {
    return AttemptFailure{FetchError::kProtocol, http, "expected HTTP 200, got " + std::to_string(http)};
  }

  if (r.content_digest.empty()) {
    if (request.range) return AttemptFailure{FetchError::kProtocol, http, "range reply without a Content-Digest"};
    return std::nullopt;
  }
  auto expected = ParseContentDigest(r.content_digest);
  if (!expected.ok()) {
    return AttemptFailure{FetchError::kProtocol, http, "bad Content-Digest: " + expected.status().message()};
  }
  if (Sha256(body) != *expected) {
    return AttemptFailure{FetchError::kDigestMismatch, http,
                          "Content-Digest mismatch: the " + std::to_string(body.size()) +
                              " bytes received are not the bytes the storage host hashed"};
  }
  return std::nullopt;
}

}  // namespace affinity::fetcher
