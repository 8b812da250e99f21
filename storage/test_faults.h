// TestFaults: faults the storage host injects on purpose, for tests and
// benchmarks only (flags --test-fault and --test-delay-ms; main logs a
// warning at start-up whenever one is on). They exist for failures a real
// server cannot otherwise be made to produce on demand:
//   corrupt-body:N  flip one byte in the bodies of the next N image replies
//                   that carry a body, AFTER their Content-Digest was computed;
//   delay           hold every image reply for D ms before sending it
//                   (emulated round trip; the transport waits on an asio
//                   timer, so no I/O thread is blocked).
//
// Thread safety: atomics and a value set before the server starts; any thread.
// Failure: Add() returns kInvalidArgument naming the bad spec.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace affinity::storage {

class TestFaults {
 public:
  // "corrupt-body:N" (N >= 0). Several specs add up.
  Status Add(const std::string& spec);
  void set_delay(std::chrono::milliseconds d) { delay_ = d; }
  std::chrono::milliseconds delay() const { return delay_; }
  // True (and consumes one) if the next body should be corrupted.
  bool TakeCorruption();
  bool any() const { return corrupt_left_.load() > 0 || delay_.count() > 0; }

 private:
  std::atomic<int64_t> corrupt_left_{0};
  std::chrono::milliseconds delay_{0};  // constant once the server runs
};

}  // namespace affinity::storage
