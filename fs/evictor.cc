#include "fs/evictor.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace affinity::fs {

void Evictor::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void Evictor::Stop() {
  stop_ = true;
  budget_->Wake();
  if (thread_.joinable()) thread_.join();
}

uint64_t Evictor::EvictOnce() {
  uint64_t low_water = budget_->limit() / 10 * 9;
  if (budget_->used() <= low_water) return 0;
  auto images = images_();
  std::vector<EvictionCandidate> candidates;
  for (const auto& image : images) image->CollectEvictionCandidates(candidates);
  std::sort(candidates.begin(), candidates.end(),
            [](const EvictionCandidate& a, const EvictionCandidate& b) { return a.last_access < b.last_access; });
  uint64_t freed = 0;
  for (const EvictionCandidate& c : candidates) {
    if (budget_->used() <= low_water || stop_) break;
    freed += c.image->TryEvict(c.idx);
  }
  return freed;
}

void Evictor::Loop() {
  while (!stop_) {
    budget_->WaitForPressure([this] { return stop_.load(); });
    if (stop_) break;
    uint64_t freed = EvictOnce();
    if (freed == 0 && budget_->over_limit()) {
      // Everything left is pinned or in flight: wait for the next change rather than spin.
      spdlog::debug("cache over its limit but nothing evictable yet");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace affinity::fs
