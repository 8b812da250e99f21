// TestFaults: faults the storage host injects on purpose, for tests and
// benchmarks only (flags --test-fault and --test-delay-ms; a warning is
// logged at start-up whenever one is on). They exist for failures that a real
// server cannot otherwise be made to produce on demand: a body that does not
// match its digest, and a fixed per-request delay to emulate network RTT
// (netem is not available on our machines).
//
// Thread safety: atomics; any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace affinity::storage {

class TestFaults {
 public:
  // "corrupt-body:N": flip one byte in each of the next N range bodies, after hashing.
  Status Add(const std::string& spec);
  void set_delay(std::chrono::microseconds d) { delay_ = d; }
  std::chrono::microseconds delay() const { return delay_; }
  // True (and consumes one) if this body should be corrupted.
  bool TakeCorruption();
  bool any() const { return corrupt_left_.load() > 0 || delay_.count() > 0; }

 private:
  std::atomic<int64_t> corrupt_left_{0};
  std::chrono::microseconds delay_{0};
};

}  // namespace affinity::storage
