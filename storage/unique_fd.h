// UniqueFd: sole owner of one file descriptor, closed on destruction.
//
// The storage host opens directories and images relative to descriptors
// (openat); this keeps every such descriptor owned by exactly one object so
// none leaks on an early return.
//
// Thread safety: like a plain int; one owner at a time (movable, not copyable).
// Failure: close() errors are ignored (every descriptor here is read-only).
#pragma once

#include <unistd.h>

#include <utility>

namespace affinity::storage {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership (e.g. to fdopendir, which then owns the descriptor).
  int release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace affinity::storage
