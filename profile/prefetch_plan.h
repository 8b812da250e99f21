// BuildPrefetchPlan: what a destination prefetches, in which order, from a
// profile (docs/profile.md, "The plan").
//
// Classes, most urgent first (SPEC §5):
//   critical    restart: blocks most VM starts read in the boot window;
//               live migration: blocks history reads soon after the time the
//               guest has already run (due within 10 s), likely (p >= 0.5)
//   early       the rest of the predicted working set, p >= min_probability
//   successor   reactive, not planned here: SuccessorIndex says what history
//               read right after a block the VM just read
//   background  everything else the profile knows (only with `background`)
// Within critical and early: by expected time of first read, then by
// probability; background by probability.
//
// Probability of use, p: restart: the block's (time-weighted) support. Live
// migration after E ms: a block history first reads after E keeps its
// support; one it reads before E that the guest has not read yet gets half
// (it may come later); one the guest read recently gets a recency-weighted
// share (the guest's page cache often still holds it).
//
// Thread safety: pure functions and an immutable index.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "profile/profile.h"

namespace affinity::profile {

enum class PrefetchClass : uint8_t { kCritical = 0, kEarly = 1, kSuccessor = 2, kBackground = 3 };
inline constexpr size_t kPrefetchClasses = 4;
const char* PrefetchClassName(PrefetchClass c);

enum class Arrival : uint8_t { kRestart = 0, kLiveMigration = 1 };

struct PlanOptions {
  Arrival arrival = Arrival::kRestart;
  int64_t elapsed_ms = -1;          // live: how long the guest ran; -1 = the profile's live_elapsed_ms
  double boot_support_min = 0.5;
  uint32_t boot_window_ms = 60'000;
  uint32_t critical_horizon_ms = 10'000;
  double min_probability = 0.05;    // below this a block is background (cost/benefit floor)
  bool background = false;
};

struct PlanItem {
  uint32_t image = 0;               // index into Profile::images
  uint32_t block = 0;
  PrefetchClass cls = PrefetchClass::kEarly;
  float probability = 0;
  int64_t due_ms = 0;               // expected first read, ms after arrival (0 = now)
  bool operator==(const PlanItem&) const = default;
};

std::vector<PlanItem> BuildPrefetchPlan(const Profile& profile, const PlanOptions& options);

// Successor edges of one profile, by (image, block), for reactive prefetch.
class SuccessorIndex {
 public:
  explicit SuccessorIndex(const Profile& profile);
  // The edges out of `block` (most frequent first); empty if none.
  std::span<const SuccessorEdge> Successors(uint32_t image, uint32_t block) const;
  // P(successor read | block read): the edge's sessions over the history's.
  double Probability(const SuccessorEdge& edge) const;

 private:
  const Profile& profile_;
  std::vector<std::unordered_map<uint32_t, std::pair<uint32_t, uint32_t>>> by_block_;  // block -> [begin, end)
};

}  // namespace affinity::profile
