#include "profile/prefetch_policy.h"

#include <algorithm>

namespace affinity::profile {

PrefetchPolicy::PrefetchPolicy(PolicyOptions options)
    : options_(options), window_(std::clamp<uint32_t>(options.initial_window, 1, std::max<uint32_t>(1, options.max_window))) {}

double PrefetchPolicy::Threshold(uint64_t bytes) const {
  const double transfer_ms = static_cast<double>(bytes) / std::max(1.0, link_.bytes_per_ms);
  const double benefit = link_.rtt_ms + transfer_ms;
  double cost = transfer_ms * std::max(0.25, demand_busy_);
  if (options_.cache_free_bytes > 0) {
    // Taking the last free bytes of the cache costs as much as a stall.
    cost += benefit * static_cast<double>(bytes) / static_cast<double>(options_.cache_free_bytes);
  }
  return cost / (benefit + cost);
}

double PrefetchPolicy::Calibration(PrefetchClass c) const {
  const ClassStats& s = classes_[static_cast<size_t>(c)];
  return std::min(2.0, (static_cast<double>(s.used) + 2) / (s.expected + 2));
}

bool PrefetchPolicy::Stopped(PrefetchClass c) const {
  const ClassStats& s = classes_[static_cast<size_t>(c)];
  return s.matured >= options_.min_samples &&
         static_cast<double>(s.used) < options_.stop_accuracy * static_cast<double>(s.matured);
}

bool PrefetchPolicy::Worth(PrefetchClass c, double p, uint64_t bytes) const {
  if (Stopped(c)) return false;
  const double calibrated = std::min(1.0, p * Calibration(c));
  return calibrated >= Threshold(bytes);
}

void PrefetchPolicy::SetDemandBusy(double fraction) { demand_busy_ = std::clamp(fraction, 0.0, 1.0); }

void PrefetchPolicy::OnMatured(PrefetchClass c, double p, bool used) {
  ClassStats& s = classes_[static_cast<size_t>(c)];
  s.expected += std::clamp(p, 0.0, 1.0);
  s.used += used ? 1 : 0;
  s.matured += 1;
}

void PrefetchPolicy::OnLateDemandMiss() { window_ = std::min(options_.max_window, window_ + 1); }

void PrefetchPolicy::OnDemandMissRunning() { window_ = std::max<uint32_t>(1, window_ / 2); }

}  // namespace affinity::profile
