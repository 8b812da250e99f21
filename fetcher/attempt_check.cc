#include "fetcher/attempt_check.h"

#include <array>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/byte_range.h"
#include "common/digest.h"

namespace affinity::fetcher {
namespace {

constexpr size_t kMaxReasonChars = 300;  // a proxy's HTML error page must not flood our logs

std::string CurlMessage(CURLcode code, const std::string& detail) {
  std::string m = curl_easy_strerror(code);
  if (!detail.empty()) m += " (" + detail + ")";
  return m;
}

// With TLS 1.3 the server checks our client certificate after the client
// already considers the handshake done, so a refusal arrives as an alert on
// the first read (CURLE_RECV_ERROR "tlsv13 alert certificate required") or
// write instead of as CURLE_SSL_CONNECT_ERROR. These alert texts (OpenSSL's)
// mean the peer refused us, which no retry will change.
bool PeerRefusedOurCertificate(const std::string& detail) {
  if (detail.find("alert") == std::string::npos) return false;
  static constexpr std::array<std::string_view, 8> kRefusals = {
      "unknown ca",          "bad certificate",         "certificate required", "certificate unknown",
      "certificate expired", "certificate revoked",     "unsupported certificate", "access denied"};
  for (std::string_view r : kRefusals) {
    if (detail.find(r) != std::string::npos) return true;
  }
  return false;
}

AttemptFailure TlsHandshakeFailure(CURLcode code, const std::string& detail) {
  return {FetchError::kTlsHandshake, 0,
          "TLS handshake failed; is our client certificate accepted by the storage host? " +
              CurlMessage(code, detail)};
}

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kMaxReasonChars)) out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  return out;
}

// "not_found: image 'x' of vm 'y' not found", from the Affinity-Error header
// and the JSON body; a non-JSON body is quoted (shortened).
std::string ServerReason(const AttemptResult& r) {
  std::string code = r.affinity_error, reason;
  if (r.body != nullptr && !r.body->empty()) {
    auto doc = nlohmann::json::parse(r.body->begin(), r.body->end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
      if (code.empty() && doc.contains("error") && doc["error"].is_string()) code = doc["error"].get<std::string>();
      if (doc.contains("reason") && doc["reason"].is_string()) reason = doc["reason"].get<std::string>();
    } else {
      reason = Printable(std::string_view(reinterpret_cast<const char*>(r.body->data()), r.body->size()));
    }
  }
  code = Printable(code);
  reason = Printable(reason);
  if (code.empty() && reason.empty()) return "(no reason given)";
  if (code.empty()) return reason;
  if (reason.empty()) return code;
  return code + ": " + reason;
}

AttemptFailure Fail(FetchError e, long http, std::string message) {
  return AttemptFailure{e, static_cast<int>(http), std::move(message), {}};
}

// The machine-readable code of an error reply: the header, else the JSON body's "error".
std::string ServerCode(const AttemptResult& r) {
  if (!r.affinity_error.empty()) return Printable(r.affinity_error);
  if (r.body == nullptr || r.body->empty()) return {};
  auto doc = nlohmann::json::parse(r.body->begin(), r.body->end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.contains("error") && doc["error"].is_string()) return Printable(doc["error"].get<std::string>());
  return {};
}

}  // namespace

AttemptFailure ClassifyCurlError(CURLcode code, const std::string& detail, const std::string& ca_file) {
  switch (code) {
    // The storage host's certificate chain or name does not check out against our CA file.
    case CURLE_PEER_FAILED_VERIFICATION:  // == CURLE_SSL_CACERT since 7.62
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return {FetchError::kTlsUntrusted, 0,
              "TLS: the storage host's certificate is not trusted by --ca-file " + ca_file + ": " +
                  CurlMessage(code, detail)};
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
      return {FetchError::kTlsUntrusted, 0, "TLS: cannot use --ca-file " + ca_file + ": " + CurlMessage(code, detail)};

    // Our own certificate or key cannot be loaded: a local configuration error.
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CIPHER:
      return {FetchError::kTlsHandshake, 0,
              "TLS: our client certificate or key (--cert/--key) cannot be used: " + CurlMessage(code, detail)};

    case CURLE_SSL_CONNECT_ERROR:
      // An alert from the server is a refusal (e.g. our certificate is not from
      // its CA). Without one the connection died mid-handshake (server restart,
      // overload): transient.
      if (detail.find("alert") != std::string::npos) return TlsHandshakeFailure(code, detail);
      return {FetchError::kConnect, 0, "connect: TLS connection lost during the handshake: " + CurlMessage(code, detail)};

    case CURLE_OPERATION_TIMEDOUT: return {FetchError::kTimeout, 0, "timed out: " + CurlMessage(code, detail)};

    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {FetchError::kConnect, 0, "connect: " + CurlMessage(code, detail)};
    case CURLE_SEND_ERROR:
      if (PeerRefusedOurCertificate(detail)) return TlsHandshakeFailure(code, detail);
      return {FetchError::kConnect, 0, "connect: sending the request failed: " + CurlMessage(code, detail)};

    case CURLE_RECV_ERROR:
      if (PeerRefusedOurCertificate(detail)) return TlsHandshakeFailure(code, detail);
      [[fallthrough]];
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return {FetchError::kServerError, 0, "connection dropped: " + CurlMessage(code, detail)};

    // The request itself cannot be made: retrying cannot help.
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
      return {FetchError::kClientError, 0, "bad request URL or option: " + CurlMessage(code, detail)};

    default: return {FetchError::kConnect, 0, CurlMessage(code, detail)};
  }
}

std::optional<AttemptFailure> CheckAttempt(const Request& request, const AttemptResult& r,
                                           const std::string& ca_file) {
  if (r.body_too_long) {
    return Fail(FetchError::kProtocol, r.http_status,
                "the storage host sent more than the " + std::to_string(request.range ? request.range->length : 0) +
                    " bytes asked for");
  }
  if (r.curl_code != CURLE_OK) return ClassifyCurlError(r.curl_code, r.curl_detail, ca_file);
  const long http = r.http_status;
  const std::string status_text = "HTTP " + std::to_string(http);
  if (http >= 400) {
    AttemptFailure f = Fail(http >= 500 ? FetchError::kServerError : FetchError::kClientError, http,
                            status_text + " " + ServerReason(r));
    f.server_error = ServerCode(r);
    return f;
  }
  static const std::vector<uint8_t> kEmpty;
  const std::vector<uint8_t>& body = r.body != nullptr ? *r.body : kEmpty;

  if (request.range) {
    if (http != 206) return Fail(FetchError::kProtocol, http, "expected HTTP 206 for a range request, got " + status_text);
    auto cr = ParseContentRange(r.content_range);
    if (!cr.ok()) return Fail(FetchError::kProtocol, http, "bad Content-Range '" + Printable(r.content_range) + "'");
    if (cr->offset != request.range->offset || cr->end() > request.range->end() || cr->length == 0) {
      return Fail(FetchError::kProtocol, http,
                  "Content-Range '" + r.content_range + "' does not match the request " +
                      FormatRangeHeader(*request.range));
    }
    if (body.size() < cr->length) {
      return Fail(FetchError::kShortBody, http,
                  "short body: " + std::to_string(body.size()) + " of " + std::to_string(cr->length) + " bytes");
    }
    if (body.size() > cr->length) {
      return Fail(FetchError::kProtocol, http,
                  "body of " + std::to_string(body.size()) + " bytes for a Content-Range of " +
                      std::to_string(cr->length));
    }
  } else if (http < 200 || http > 299) {
    return Fail(FetchError::kProtocol, http, "expected HTTP 2xx, got " + status_text);
  }

  if (r.content_digest.empty()) {
    if (request.range) return Fail(FetchError::kProtocol, http, "range reply without a Content-Digest");
    return std::nullopt;
  }
  auto expected = ParseContentDigest(r.content_digest);
  if (!expected.ok()) return Fail(FetchError::kProtocol, http, "bad Content-Digest: " + expected.status().message());
  if ((r.body_sha256 ? *r.body_sha256 : Sha256(body)) != *expected) {
    return Fail(FetchError::kDigestMismatch, http,
                "Content-Digest mismatch: the " + std::to_string(body.size()) +
                    " bytes received are not the bytes the storage host hashed");
  }
  return std::nullopt;
}

}  // namespace affinity::fetcher
