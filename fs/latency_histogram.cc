#include "fs/latency_histogram.h"

#include <bit>

namespace affinity::fs {

int LatencyHistogram::BucketOf(uint64_t v) {
  if (v < 16) return static_cast<int>(v);
  int msb = 63 - std::countl_zero(v);  // >= 4
  if (msb > 31) return kBuckets - 1;
  int sub = static_cast<int>((v >> (msb - kSubBits)) & ((1 << kSubBits) - 1));
  return 16 + (msb - 4) * (1 << kSubBits) + sub;
}

uint64_t LatencyHistogram::UpperBoundOf(int bucket) {
  if (bucket < 16) return static_cast<uint64_t>(bucket);
  int msb = (bucket - 16) / (1 << kSubBits) + 4;
  int sub = (bucket - 16) % (1 << kSubBits);
  uint64_t base = uint64_t{1} << msb;
  uint64_t step = uint64_t{1} << (msb - kSubBits);
  return base + step * static_cast<uint64_t>(sub + 1) - 1;
}

void LatencyHistogram::Record(uint64_t micros) {
  buckets_[static_cast<size_t>(BucketOf(micros))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::Percentile(double q) const {
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  auto rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<size_t>(i)].load(std::memory_order_relaxed);
    if (seen >= rank) return UpperBoundOf(i);
  }
  return UpperBoundOf(kBuckets - 1);
}

void LatencyHistogram::MergeFrom(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) {
    buckets_[i].fetch_add(other.buckets_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  count_.fetch_add(other.count(), std::memory_order_relaxed);
}

}  // namespace affinity::fs
