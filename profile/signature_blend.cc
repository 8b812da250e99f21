#include "profile/signature_blend.h"

#include <algorithm>
#include <vector>

namespace affinity::profile {

void BlendSignaturePriors(ImageProfile& image, std::span<const BlockPrior> priors, uint32_t history_sessions) {
  // Sorted by block, strongest first within a block; then one per block.
  std::vector<BlockPrior> sorted(priors.begin(), priors.end());
  std::sort(sorted.begin(), sorted.end(), [](const BlockPrior& a, const BlockPrior& b) {
    if (a.block != b.block) return a.block < b.block;
    if (a.score != b.score) return a.score > b.score;
    return a.first_ms < b.first_ms;
  });
  sorted.erase(std::unique(sorted.begin(), sorted.end(),
                           [](const BlockPrior& a, const BlockPrior& b) { return a.block == b.block; }),
               sorted.end());

  const float n = static_cast<float>(history_sessions);
  const float k = kPriorWeightSessions;
  auto mix = [&](float history, float prior) { return (n * history + k * prior) / (n + k); };

  std::vector<BlockProfile> out;
  out.reserve(image.blocks.size() + sorted.size());
  size_t h = 0;
  size_t p = 0;
  while (h < image.blocks.size() || p < sorted.size()) {
    if (p == sorted.size() || (h < image.blocks.size() && image.blocks[h].block < sorted[p].block)) {
      out.push_back(image.blocks[h++]);
    } else if (h == image.blocks.size() || sorted[p].block < image.blocks[h].block) {
      const BlockPrior& prior = sorted[p++];
      BlockProfile b;
      b.block = prior.block;
      b.score = mix(0, prior.score);
      b.boot_support = mix(0, prior.boot_support);
      b.first_ms = prior.first_ms;
      out.push_back(b);
    } else {
      BlockProfile b = image.blocks[h++];
      const BlockPrior& prior = sorted[p++];
      b.score = mix(b.score, prior.score);
      b.boot_support = mix(b.boot_support, prior.boot_support);
      out.push_back(b);
    }
  }
  image.blocks = std::move(out);
}

}  // namespace affinity::profile
