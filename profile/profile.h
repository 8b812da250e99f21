// Profile: what the storage host predicts a VM will read, per image, at a
// fixed block granularity (docs/profile.md). Built by BuildProfile from the
// sessions the destinations uploaded, shipped in the migration handshake
// (EncodeProfile), turned into a prefetch plan by BuildPrefetchPlan.
//
// Everything is plain data: no I/O, no threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace affinity::profile {

// Granularity of the model: the storage host's tracking block (64 KiB).
// A destination with bigger cache chunks maps blocks onto its chunks.
inline constexpr uint32_t kProfileBlockSize = 64 * 1024;

struct BlockProfile {
  uint32_t block = 0;         // offset / block_size
  float score = 0;            // predicted probability of use for the profile's target time, 0..1
  float support = 0;          // (time- and age-weighted) fraction of sessions that read it
  float boot_support = 0;     // fraction of VM starts that read it within the boot window
  float decayed_reads = 0;    // reads per session, decayed with age
  uint32_t first_ms = 0;      // weighted median time of first read, ms since session start
  uint32_t hours = 0;         // bit h: read during hour h (UTC) of some session
  uint8_t weekdays = 0;       // bit d: read on weekday d (0 = Sunday)
  int64_t live_last_ms = -1;  // the live session: ms since its start of its last read; -1 = not read
  bool operator==(const BlockProfile&) const = default;
};

// B was first read within the successor window after A, in `count` sessions.
struct SuccessorEdge {
  uint32_t from = 0;
  uint32_t to = 0;
  uint32_t count = 0;
  bool operator==(const SuccessorEdge&) const = default;
};

struct ImageProfile {
  std::string name;
  std::vector<BlockProfile> blocks;      // sorted by block, unique
  std::vector<SuccessorEdge> successors; // sorted by (from, count desc), at most top-k per `from`
  bool operator==(const ImageProfile&) const = default;
};

// Slot for application signatures (issue 6): which application was
// detected and why. Empty until the guest inspector exists.
struct SignatureMatch {
  std::string application;
  std::string evidence;
  bool operator==(const SignatureMatch&) const = default;
};

struct Profile {
  static constexpr uint32_t kFormatVersion = 1;
  std::string vm;
  int64_t built_ms = 0;          // when the storage host built it (wall clock)
  int64_t target_ms = 0;         // the time it predicts for (the migration's time)
  uint32_t block_size = kProfileBlockSize;
  uint32_t sessions = 0;         // history sessions used
  uint32_t boot_sessions = 0;    // of which VM starts
  std::array<uint64_t, 24> hour_histogram{};    // reads per hour of day (UTC)
  std::array<uint64_t, 7> weekday_histogram{};  // reads per weekday (0 = Sunday)
  std::string live_session;      // the run being migrated, if it uploaded anything
  uint64_t live_elapsed_ms = 0;  // how long it had run at its last upload
  std::vector<SignatureMatch> signatures;
  std::vector<ImageProfile> images;
  bool operator==(const Profile&) const = default;
};

}  // namespace affinity::profile
