// PrefetchPolicy: the cost/benefit model that decides whether a planned
// block is worth fetching now, how many prefetches may run at once, and when
// a class stops (docs/profile.md, "Adaptive prefetch").
//
// A block of `bytes` with probability p of being read:
//   benefit if used   = the stall it saves: rtt + bytes / bandwidth
//   cost if unused    = link time taken from demand (bytes / bandwidth,
//                       weighted by how busy demand keeps the link, at
//                       least 1/4) plus the cache space it takes
//                       (bytes / free cache, scaled to the same ms)
//   fetch when  p' * benefit >= (1 - p') * cost,
// where p' = p x the class's calibration: (used + 2) / (expected + 2) over
// the prefetches that matured (their due time plus a grace passed), so a
// profile that overestimates this session is trusted less as evidence
// arrives. A class whose observed accuracy stays under `stop_accuracy` after
// `min_samples` matured prefetches stops. The window (prefetches in flight)
// starts at `initial_window`, grows by one on each late demand miss (a read
// of a block still queued: prefetch is behind) and halves while demand
// misses are running (prefetch yields the link), within [1, max_window].
//
// Thread safety: none; the prefetch engine's thread owns it.
#pragma once

#include <array>
#include <cstdint>

#include "profile/prefetch_plan.h"

namespace affinity::profile {

struct LinkEstimate {
  double rtt_ms = 1.0;
  double bytes_per_ms = 125'000;  // 1 Gbit/s
};

struct PolicyOptions {
  uint32_t min_samples = 32;
  double stop_accuracy = 0.10;
  uint32_t initial_window = 4;
  uint32_t max_window = 6;
  uint64_t cache_free_bytes = 0;   // 0 = unlimited cache: space costs nothing
};

class PrefetchPolicy {
 public:
  explicit PrefetchPolicy(PolicyOptions options);

  // Whether a block of `bytes` with probability p, in class c, is worth it now.
  bool Worth(PrefetchClass c, double p, uint64_t bytes) const;
  // The smallest p' that is worth it for `bytes` now (for tests and xattrs).
  double Threshold(uint64_t bytes) const;
  double Calibration(PrefetchClass c) const;
  bool Stopped(PrefetchClass c) const;
  uint32_t window() const { return window_; }

  // Feedback.
  void SetLink(LinkEstimate link) { link_ = link; }
  void SetDemandBusy(double fraction);          // share of link time demand used lately, 0..1
  void SetCacheFree(uint64_t bytes) { options_.cache_free_bytes = bytes; }
  void OnMatured(PrefetchClass c, double p, bool used);
  void OnLateDemandMiss();
  void OnDemandMissRunning();

 private:
  struct ClassStats {
    double expected = 0;
    uint64_t used = 0;
    uint64_t matured = 0;
  };
  PolicyOptions options_;
  LinkEstimate link_;
  double demand_busy_ = 0;
  uint32_t window_;
  std::array<ClassStats, kPrefetchClasses> classes_{};
};

}  // namespace affinity::profile
