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
    case ApiError::kInternal:
      return 500;
  }
  return 500;
}

Reply ErrorReply(ApiError e, std::string reason) {
  std::string code(ApiErrorCode(e));
  // Reasons may quote request bytes; the JSON library escapes them, and an
  // invalid UTF-8 byte is replaced instead of making dump() throw.
  std::string body = nlohmann::json{{"error", code}, {"reason", reason}}.dump(-1, ' ', false,
                                                                              nlohmann::json::error_handler_t::replace);
  Reply r = JsonReply(ApiErrorStatus(e), std::move(body));
  r.headers.emplace_back("Affinity-Error", code);
  r.error_code = std::move(code);
  r.error_reason = std::move(reason);
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
    default:
      return ErrorReply(ApiError::kInternal, s.ToString());
  }
}

}  // namespace affinity::storage
