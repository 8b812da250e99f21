#include "profile/prefetch_plan.h"

#include <algorithm>
#include <cmath>

namespace affinity::profile {

const char* PrefetchClassName(PrefetchClass c) {
  switch (c) {
    case PrefetchClass::kCritical: return "critical";
    case PrefetchClass::kEarly: return "early";
    case PrefetchClass::kSuccessor: return "successor";
    case PrefetchClass::kBackground: return "background";
  }
  return "?";
}

namespace {

// How likely the guest reads again a block it read `age_ms` ago: its page
// cache probably still holds a recent block; the share is what measured
// traces showed (docs/profile.md).
constexpr double kRereadShare = 0.3;
constexpr double kRecencyHalfLifeMs = 60'000;

PlanItem PlanRestart(uint32_t image, const BlockProfile& b, const PlanOptions& o) {
  PlanItem item{image, b.block, PrefetchClass::kEarly, b.score, b.first_ms};
  if (b.boot_support >= o.boot_support_min && b.first_ms <= o.boot_window_ms) item.cls = PrefetchClass::kCritical;
  return item;
}

PlanItem PlanLive(uint32_t image, const BlockProfile& b, int64_t elapsed, const PlanOptions& o) {
  PlanItem item{image, b.block, PrefetchClass::kEarly, b.score, 0};
  if (b.live_last_ms >= 0) {
    const double age = static_cast<double>(std::max<int64_t>(0, elapsed - b.live_last_ms));
    const double recency = std::exp2(-age / kRecencyHalfLifeMs);
    item.probability = static_cast<float>(std::max<double>(b.score, 0.0) * kRereadShare + kRereadShare * recency);
    item.probability = std::min(item.probability, 1.0f);
    return item;
  }
  if (static_cast<int64_t>(b.first_ms) >= elapsed) {
    item.due_ms = static_cast<int64_t>(b.first_ms) - elapsed;
    if (item.due_ms <= o.critical_horizon_ms && b.score >= 0.5f) item.cls = PrefetchClass::kCritical;
  } else {
    item.probability = b.score * 0.5f;
  }
  return item;
}

}  // namespace

std::vector<PlanItem> BuildPrefetchPlan(const Profile& profile, const PlanOptions& o) {
  const int64_t elapsed = o.elapsed_ms >= 0 ? o.elapsed_ms : static_cast<int64_t>(profile.live_elapsed_ms);
  std::vector<PlanItem> plan;
  for (uint32_t i = 0; i < profile.images.size(); ++i) {
    for (const BlockProfile& b : profile.images[i].blocks) {
      PlanItem item = o.arrival == Arrival::kRestart ? PlanRestart(i, b, o) : PlanLive(i, b, elapsed, o);
      if (item.probability <= 0) continue;
      if (item.cls != PrefetchClass::kCritical && item.probability < o.min_probability) {
        if (!o.background) continue;
        item.cls = PrefetchClass::kBackground;
      }
      plan.push_back(item);
    }
  }
  std::stable_sort(plan.begin(), plan.end(), [](const PlanItem& a, const PlanItem& b) {
    if (a.cls != b.cls) return a.cls < b.cls;
    if (a.cls != PrefetchClass::kBackground && a.due_ms != b.due_ms) return a.due_ms < b.due_ms;
    if (a.probability != b.probability) return a.probability > b.probability;
    if (a.image != b.image) return a.image < b.image;
    return a.block < b.block;
  });
  return plan;
}

SuccessorIndex::SuccessorIndex(const Profile& profile) : profile_(profile), by_block_(profile.images.size()) {
  for (size_t i = 0; i < profile.images.size(); ++i) {
    const auto& edges = profile.images[i].successors;
    for (uint32_t k = 0; k < edges.size();) {
      uint32_t end = k;
      while (end < edges.size() && edges[end].from == edges[k].from) ++end;
      by_block_[i][edges[k].from] = {k, end};
      k = end;
    }
  }
}

std::span<const SuccessorEdge> SuccessorIndex::Successors(uint32_t image, uint32_t block) const {
  if (image >= by_block_.size()) return {};
  auto it = by_block_[image].find(block);
  if (it == by_block_[image].end()) return {};
  const auto& edges = profile_.images[image].successors;
  return std::span<const SuccessorEdge>(edges.data() + it->second.first, it->second.second - it->second.first);
}

double SuccessorIndex::Probability(const SuccessorEdge& edge) const {
  return std::min(1.0, static_cast<double>(edge.count) / std::max<uint32_t>(1, profile_.sessions));
}

}  // namespace affinity::profile
