// BuildSignaturePriors: block-level prior beliefs about what a guest will
// read, from the applications detected on it (docs/signatures.md, "Priors"),
// so that a VM with no history still gets a useful prefetch plan.
//
// Each need of a matched signature names files (path globs, or every file a
// dpkg package owns, from /var/lib/dpkg/info/<pkg>[:<arch>].list read
// through the GuestFileReader). A matched file contributes the blocks of its
// data extents (at most kMaxPriorBytesPerFile), of its inode, and of every
// directory on its path (the guest reads them to resolve it); a symlink also
// its target's. Boot-phase needs also contribute the file-system metadata
// (kMetadata entries). Score by priority, first_ms and boot_support by
// phase (constants below). Learned paths (from history,
// profile/signature_learner.h) replace the signature's guess for their file:
// score = their support clamped to [0.05, 0.95], first_ms as learned, and
// only the bytes history read of it (LearnedPath::ranges) when it says.
//
// The result is sorted by block, one prior per block: the strongest (higher
// score, then earlier first_ms).
//
// Thread safety: a pure function of its inputs; `read` is called on the
// caller's thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "profile/guest_files.h"
#include "profile/learned_path.h"
#include "profile/profile.h"
#include "profile/signature_db.h"
#include "profile/signature_matcher.h"

namespace affinity::profile {

struct BlockPrior {
  uint32_t block = 0;
  float score = 0;            // prior probability of use, 0..1
  uint32_t first_ms = 0;      // expected first read, ms since VM start
  float boot_support = 0;     // = score for the boot phase, else 0
  uint32_t application = 0;   // index into the matches given
  bool operator==(const BlockPrior&) const = default;
};

// Priority -> score. "critical" must clear the plan's boot_support_min (0.5)
// so a boot-critical prior is in the critical class of a restart with no
// history; "early" stays above it as a likely read; "background" is a guess
// still worth the plan's p >= 0.05 floor.
inline constexpr float kCriticalPriorScore = 0.9f;
inline constexpr float kEarlyPriorScore = 0.6f;
inline constexpr float kBackgroundPriorScore = 0.2f;
// Learned support is clamped: never certain (history can change), never
// below the plan's probability floor.
inline constexpr float kMinLearnedScore = 0.05f;
inline constexpr float kMaxLearnedScore = 0.95f;
// Phase -> first_ms. Boot needs are spread over the first 30 s in the order
// the signature lists them (the plan fetches critical blocks by first_ms, so
// order is priority); services start about 20 s in; steady-state files are
// spread over 60..120 s.
inline constexpr uint32_t kBootSpreadMs = 30'000;
inline constexpr uint32_t kServiceStartMs = 20'000;
inline constexpr uint32_t kSteadyStartMs = 60'000;
inline constexpr uint32_t kSteadySpreadMs = 60'000;
// Bytes of one file that become priors. A boot or service start reads whole
// binaries, libraries, kernel and initramfs (all well under this); a big
// file (a database, a log) is read sparsely, and mostly its head first, so
// only its head is a good guess: the cap keeps one such file from filling the
// plan with blocks that are probably never read.
inline constexpr uint64_t kMaxPriorBytesPerFile = 64ull << 20;
// A dpkg .list read is bounded (the biggest, linux-image's, is < 1 MiB).
inline constexpr size_t kMaxPackageListBytes = 8u << 20;

class FileMapIndex;

// The files a dpkg package owns (a glob: every package it names), per its
// .list files of any architecture, without directories and documentation.
std::vector<const GuestFile*> PackageFiles(const std::string& package, const FileMapIndex& index,
                                           const GuestFileReader& read);

std::vector<BlockPrior> BuildSignaturePriors(std::span<const SignatureMatch> matches, const SignatureDb& db,
                                             std::span<const LearnedPath> learned, const GuestFileMap& map,
                                             const GuestFileReader& read,
                                             uint32_t block_size = kProfileBlockSize);

}  // namespace affinity::profile
