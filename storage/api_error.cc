#include "storage/api_error.h"

#include <nlohmann/json.hpp>

namespace affinity::storage {

std::string_view ApiErrorCode(ApiError e) {
  switch (e) {
    case ApiError::kBadRequest:
      return "bad_request";
    case ApiError::kBadName:
      return "bad_name";
    case ApiError::kBadRange:
      return "bad_range";
    case ApiError::kForbidden:
      return "forbidden";
    case ApiError::kNotFound:
      return "not_found";
    case ApiError::kMethodNotAllowed:
      return "method_not_allowed";
    case ApiError::kRangeNotSatisfiable:
      return "range_not_satisfiable";
    case ApiError::kConflict:
      return "conflict";
    case ApiError::kPayloadTooLarge:
      return "payload_too_large";
    case ApiError::kInternal:
      return "internal";
  }
  return "internal";
}

int ApiErrorStatus(ApiError e) {
  switch (e) {
    case ApiError::kBadRequest:
    case ApiError::kBadName:
    case ApiError::kBadRange:
      return 400;
    case ApiError::kForbidden:
      return 403;
    case ApiError::kNotFound:
      return 404;
    case ApiError::kMethodNotAllowed:
      return 405;
    case ApiError::kRangeNotSatisfiable:
      return 416;
    case ApiError::kConflict:
      return 409;
    case ApiError::kPayloadTooLarge:
      return 413;
    case ApiError::kInternal:
      return 500;
  }
  return 500;
}

namespace {

Reply CodedReply(int status, std::string code, std::string reason) {
  // Reasons may quote request bytes; the JSON library escapes them, and an
  // invalid UTF-8 byte is replaced instead of making dump() throw.
  std::string body = nlohmann::json{{"error", code}, {"reason", reason}}.dump(-1, ' ', false,
                                                                              nlohmann::json::error_handler_t::replace);
  Reply r = JsonReply(status, std::move(body));
  r.headers.emplace_back("Affinity-Error", code);
  r.error_code = std::move(code);
  r.error_reason = std::move(reason);
  return r;
}

}  // namespace

Reply ErrorReply(ApiError e, std::string reason) {
  return CodedReply(ApiErrorStatus(e), std::string(ApiErrorCode(e)), std::move(reason));
}

Reply DenialReply(const acl::GrantDenial& denial) {
  Reply r = CodedReply(acl::GrantRefusalStatus(denial.refusal), std::string(acl::GrantRefusalCode(denial.refusal)),
                       denial.reason);
  if (r.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"affinity\"");
  return r;
}

Reply ErrorReplyFromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return ErrorReply(ApiError::kBadName, s.message());
    case StatusCode::kNotFound:
      return ErrorReply(ApiError::kNotFound, s.message());
    case StatusCode::kPermissionDenied:
      return ErrorReply(ApiError::kForbidden, s.message());
    case StatusCode::kFailedPrecondition:
      return ErrorReply(ApiError::kConflict, s.message());
    case StatusCode::kOutOfRange:
      return ErrorReply(ApiError::kRangeNotSatisfiable, s.message());
    default:
      return ErrorReply(ApiError::kInternal, s.ToString());
  }
}

}  // namespace affinity::storage
