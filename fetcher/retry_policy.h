// RetryPolicy: when (and whether) a failed request gets another attempt.
//
// Exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): after the n-th failed attempt (n >= 1) the wait is
// uniform in [0, min(max_backoff, initial_backoff * 2^(n-1))]. Full jitter
// spreads the retries of many destinations hitting a restarted storage host
// instead of synchronizing them.
//
// Deadline clipping: a request has one overall deadline. A wait that would
// leave less than `min_attempt` before the deadline is shortened so that one
// last attempt still starts `min_attempt` before it; when less than
// `min_attempt` is left already, NextAttemptAt says "give up" (nullopt). So no
// wait ever runs past the deadline and the loop never idles until a deadline
// it can no longer use.
//
// Thread safety: none; one instance per thread (it owns its RNG). The seed is
// a constructor argument so tests get reproducible sequences.
// Failure: none; every input yields a wait (negative or zero settings give 0).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace affinity::fetcher {

class RetryPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  RetryPolicy(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed,
              std::chrono::milliseconds min_attempt = std::chrono::milliseconds(50))
      : initial_(initial), max_(max), min_attempt_(min_attempt), rng_(seed) {}

  // The upper bound of the jitter interval after `failed_attempts` (>= 1) failures.
  std::chrono::milliseconds CeilingAfter(int failed_attempts) const;

  // A jittered wait in [0, CeilingAfter(failed_attempts)].
  std::chrono::milliseconds BackoffAfter(int failed_attempts);

  // When attempt `failed_attempts + 1` should start, clipped to the deadline
  // as described above; nullopt: give up (the deadline leaves no useful time).
  std::optional<Clock::time_point> NextAttemptAt(int failed_attempts, Clock::time_point now,
                                                 Clock::time_point deadline);

  std::chrono::milliseconds min_attempt() const { return min_attempt_; }

 private:
  std::chrono::milliseconds initial_, max_, min_attempt_;
  std::mt19937_64 rng_;
};

}  // namespace affinity::fetcher
