// TestFaults: faults the storage host injects on purpose, for tests and
// benchmarks only (flags --test-fault and --test-delay-ms; main logs a
// warning at start-up whenever one is on). They exist for failures a real
// server cannot otherwise be made to produce on demand:
//   corrupt-body:N  flip one byte in the bodies of the next N image replies
//                   that carry a body, AFTER their Content-Digest was computed;
//   delay           hold every image reply for D ms before sending it
//                   (emulated round trip; the transport waits on an asio
//                   timer, so no I/O thread is blocked);
//   bandwidth       a link of B bytes/s shared by all image replies, FIFO:
//                   each reply is also held until its bytes would have
//                   crossed that link after the replies before it
//                   (--test-bandwidth; emulates a capped link without netem).
//
// Thread safety: atomics and a value set before the server starts; any thread.
// Failure: Add() returns kInvalidArgument naming the bad spec.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/status.h"

namespace affinity::storage {

class TestFaults {
 public:
  // "corrupt-body:N" (N >= 0). Several specs add up.
  Status Add(const std::string& spec);
  void set_delay(std::chrono::microseconds d) { delay_ = d; }
  void set_bandwidth(uint64_t bytes_per_s) { bandwidth_ = bytes_per_s; }
  // How long to hold an image reply of `bytes` bytes sent now.
  std::chrono::microseconds ReplyDelay(uint64_t bytes);
  // True (and consumes one) if the next body should be corrupted.
  bool TakeCorruption();
  bool any() const { return corrupt_left_.load() > 0 || delay_.count() > 0 || bandwidth_ > 0; }

 private:
  std::atomic<int64_t> corrupt_left_{0};
  std::chrono::microseconds delay_{0};  // constant once the server runs
  uint64_t bandwidth_ = 0;              // constant once the server runs; 0 = no cap
  std::mutex link_mu_;
  std::chrono::steady_clock::time_point link_free_at_{};  // guarded by link_mu_
};

}  // namespace affinity::storage
