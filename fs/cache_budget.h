// CacheBudget: the byte budget shared by all images of one cache, and the
// clock that orders chunks for LRU eviction.
//
// Images add the bytes of chunks they store and subtract what they drop; when
// usage passes the limit the evictor is woken. The access clock is a counter
// bumped on every read (cheaper and finer than wall time for LRU).
// Dirty chunks (written, not yet written back) count in `used` like any
// other and are also counted apart: they cannot be evicted, so a writer that
// would dirty more than 90% of the limit waits for write-back to clean some
// (WaitForDirtyRoom) instead of failing.
//
// Thread safety: all methods from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace affinity::fs {

class CacheBudget {
 public:
  explicit CacheBudget(uint64_t limit_bytes) : limit_(limit_bytes) {}

  void Add(uint64_t bytes) {
    uint64_t now = used_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (now > limit_) {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
  }
  void Sub(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }
  bool over_limit() const { return used() > limit_; }

  void AddDirty(uint64_t bytes) { dirty_.fetch_add(bytes, std::memory_order_relaxed); }
  void SubDirty(uint64_t bytes) {
    dirty_.fetch_sub(bytes, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    dirty_cv_.notify_all();
  }
  uint64_t dirty() const { return dirty_.load(std::memory_order_relaxed); }
  uint64_t dirty_limit() const { return limit_ == UINT64_MAX ? UINT64_MAX : limit_ / 10 * 9; }
  // Waits until `bytes` more dirty bytes fit under dirty_limit() (or nothing
  // is dirty: one write larger than the limit must still make progress).
  // False if the deadline passed first.
  bool WaitForDirtyRoom(uint64_t bytes, std::chrono::steady_clock::time_point deadline) {
    auto fits = [&] {
      uint64_t d = dirty();
      return d == 0 || d + bytes <= dirty_limit();
    };
    if (fits()) return true;
    std::unique_lock lock(mu_);
    return dirty_cv_.wait_until(lock, deadline, fits);
  }

  uint64_t Tick() { return clock_.fetch_add(1, std::memory_order_relaxed) + 1; }

  // For the evictor: waits until over the limit or `stop` is set.
  template <typename StopFn>
  void WaitForPressure(StopFn stop) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stop() || over_limit(); });
  }
  void Wake() {
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> clock_{0};
  std::atomic<uint64_t> dirty_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable dirty_cv_;
};

}  // namespace affinity::fs
