#include "fetcher/retry_policy.h"

#include <algorithm>

namespace affinity::fetcher {

std::chrono::milliseconds RetryPolicy::CeilingAfter(int failed_attempts) const {
  int64_t initial = std::max<int64_t>(initial_.count(), 0);
  int64_t cap = std::max<int64_t>(max_.count(), 0);
  int shift = std::clamp(failed_attempts - 1, 0, 30);  // 2^30 * any sane initial is past any cap
  int64_t ceiling = initial << shift;
  return std::chrono::milliseconds(std::min(ceiling, cap));
}

std::chrono::milliseconds RetryPolicy::BackoffAfter(int failed_attempts) {
  std::uniform_int_distribution<int64_t> dist(0, CeilingAfter(failed_attempts).count());
  return std::chrono::milliseconds(dist(rng_));
}

std::optional<RetryPolicy::Clock::time_point> RetryPolicy::NextAttemptAt(int failed_attempts, Clock::time_point now,
                                                                         Clock::time_point deadline) {
  if (deadline - now < min_attempt_) return std::nullopt;
  Clock::time_point at = now + BackoffAfter(failed_attempts);
  return std::min(at, deadline - min_attempt_);
}

}  // namespace affinity::fetcher
