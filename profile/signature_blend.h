// BlendSignaturePriors: mixes signature priors (profile/signature_priors.h)
// into an image's history-built profile (docs/signatures.md, "Blending").
//
// A prior is worth k = 1 history session: with n sessions,
//   block in both:        score = (n·history + k·prior) / (n + k),
//                         boot_support likewise, first_ms stays history's;
//   block only in priors: inserted with score = k·prior / (n + k) (the prior
//                         itself when n = 0), boot_support likewise, the
//                         prior's first_ms, support 0 (never observed);
//   block only in history: unchanged.
// So with no history the priors are the profile (boot priors land in the
// critical class of a restart); after a few sessions history dominates and a
// wrong guess fades (one session of weight against n).
//
// Keeps ImageProfile::blocks sorted by block and unique. Priors need not be
// sorted; of several for one block the strongest counts.
//
// Thread safety: pure function (mutates only `image`).
#pragma once

#include <cstdint>
#include <span>

#include "profile/profile.h"
#include "profile/signature_priors.h"

namespace affinity::profile {

// Weight of the priors, in history sessions.
inline constexpr float kPriorWeightSessions = 1.0f;

void BlendSignaturePriors(ImageProfile& image, std::span<const BlockPrior> priors, uint32_t history_sessions);

}  // namespace affinity::profile
