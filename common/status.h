// Status and Result<T>: how every library in affinityfs reports failure.
//
// No exceptions cross a FUSE callback, a curl callback or a thread boundary:
// functions that can fail return a [[nodiscard]] Status or Result<T>. The
// errno a FUSE reply needs is derived in exactly one place (ToErrno).
//
// Thread safety: plain values; safe to copy between threads.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace affinity {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // the caller's input makes no sense
  kNotFound,          // no such VM, image, chunk
  kPermissionDenied,  // refused by TLS, a grant, or ownership
  kOutOfRange,        // a byte range outside the object
  kIoError,           // local disk I/O failed
  kNoSpace,           // local disk full
  kCorruption,        // digest mismatch, torn data, bad format
  kUnavailable,       // remote unreachable / 5xx; may succeed later
  kTimeout,           // deadline passed
  kCancelled,         // shut down while waiting
  kFailedPrecondition,  // refused in the current state (e.g. commit after abort)
  kReadOnly,          // a write this host may not make now (it does not own the image)
  kInternal,          // a bug or an unexpected library failure
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "corruption: digest mismatch for chunk 7" (or "ok").
  std::string ToString() const;

  // The errno a kernel reply carries for this status (EIO, ENOENT, ...).
  int ToErrno() const;

  // Prefixes context while keeping the code: "fetch root.raw: <message>".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status NoSpace(std::string m) { return {StatusCode::kNoSpace, std::move(m)}; }
inline Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status ReadOnly(std::string m) { return {StatusCode::kReadOnly, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Status from an errno value, e.g. after a failed pwrite: ENOSPC -> kNoSpace.
Status ErrnoStatus(int err, std::string_view what);

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                    // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace affinity
