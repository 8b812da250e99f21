#include "fetcher/retry_policy.h"

#include <algorithm>

namespace affinity::fetcher {

std::chrono::milliseconds RetryPolicy::CeilingAfter(int failed_attempts) const {
  int shift = std::clamp(failed_attempts - 1, 0, 30);
  int64_t ceiling = initial_.count() << shift;
  return std::chrono::milliseconds(std::min<int64_t>(ceiling, max_.count()));
}

std::chrono::milliseconds RetryPolicy::BackoffAfter(int failed_attempts) {
  int64_t ceiling = CeilingAfter(failed_attempts).count();
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(ceiling, 0));
  return std::chrono::milliseconds(dist(rng_));
}

}  // namespace affinity::fetcher
