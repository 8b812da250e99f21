// LatencyHistogram: lock-free log-linear histogram of microsecond latencies.
//
// Buckets: values below 16 us exactly; above, 8 sub-buckets per power of two
// (relative error <= 12.5%), up to ~1 hour. Percentiles report the bucket's
// upper bound, so p99 is never understated.
//
// Thread safety: Record and Percentile may run concurrently from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace affinity::fs {

class LatencyHistogram {
 public:
  void Record(uint64_t micros);
  // q in (0, 1]; 0 when nothing was recorded.
  uint64_t Percentile(double q) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Adds another histogram's counts into this one (for mount-root totals).
  void MergeFrom(const LatencyHistogram& other);

 private:
  static constexpr int kSubBits = 3;
  static constexpr int kBuckets = 16 + (32 - 4) * (1 << kSubBits);
  static int BucketOf(uint64_t v);
  static uint64_t UpperBoundOf(int bucket);

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
};

}  // namespace affinity::fs
