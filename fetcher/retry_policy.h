// RetryPolicy: how long to wait before attempt n+1 of a failed request.
//
// Exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): wait = uniform[0, min(max, initial * 2^(n-1))]. Full
// jitter spreads the retries of many destinations hitting a restarted storage
// host instead of synchronizing them. The caller clips waits to its deadline.
//
// Thread safety: one instance per thread (it owns its RNG).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace affinity::fetcher {

class RetryPolicy {
 public:
  RetryPolicy(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed)
      : initial_(initial), max_(max), rng_(seed) {}

  // `failed_attempts` >= 1: how many attempts have failed so far.
  std::chrono::milliseconds BackoffAfter(int failed_attempts);
  // The upper bound of the jitter interval for that attempt (for tests and docs).
  std::chrono::milliseconds CeilingAfter(int failed_attempts) const;

 private:
  std::chrono::milliseconds initial_, max_;
  std::mt19937_64 rng_;
};

}  // namespace affinity::fetcher
