#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace affinity {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kPermissionDenied: return "permission denied";
    case StatusCode::kOutOfRange: return "out of range";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kNoSpace: return "no space";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kTimeout: return "timeout";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kReadOnly: return "read-only";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(StatusCodeName(code_));
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

int Status::ToErrno() const {
  switch (code_) {
    case StatusCode::kOk: return 0;
    case StatusCode::kInvalidArgument: return EINVAL;
    case StatusCode::kNotFound: return ENOENT;
    case StatusCode::kPermissionDenied: return EACCES;
    case StatusCode::kOutOfRange: return EINVAL;
    case StatusCode::kNoSpace: return ENOSPC;
    case StatusCode::kCancelled: return EINTR;
    case StatusCode::kFailedPrecondition: return EACCES;
    case StatusCode::kReadOnly: return EROFS;
    case StatusCode::kIoError:
    case StatusCode::kCorruption:
    case StatusCode::kUnavailable:
    case StatusCode::kTimeout:
    case StatusCode::kInternal: return EIO;
  }
  return EIO;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return {code_, std::move(m)};
}

Status ErrnoStatus(int err, std::string_view what) {
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT: return NoSpace(std::move(m));
    case ENOENT: return NotFound(std::move(m));
    case EACCES:
    case EPERM: return PermissionDenied(std::move(m));
    case EINVAL: return InvalidArgument(std::move(m));
    default: return IoError(std::move(m));
  }
}

}  // namespace affinity
