// CacheBudget: the byte budget shared by all images of one cache, and the
// clock that orders chunks for LRU eviction.
//
// Images add the bytes of chunks they store and subtract what they drop; when
// usage passes the limit the evictor is woken. The access clock is a counter
// bumped on every read (cheaper and finer than wall time for LRU).
//
// Thread safety: all methods from any thread.
#pragma once

#include <atomic>
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
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace affinity::fs
