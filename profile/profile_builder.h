// BuildProfile: the model of SPEC §4 from the sessions a VM's hosts uploaded
// (docs/profile.md, "The model").
//
// Each history session s gets a weight w_s = age decay (half-life) times its
// similarity to the target time (hour of day, weekday vs weekend), so a
// migration at 02:00 leans on the sessions that ran at night. Per 64 KiB
// block: support = sum of w_s over the sessions that read it / sum of w_s;
// first_ms = the w-weighted median time of first read; boot_support = the
// share of VM starts that read it in the boot window; decayed reads per
// session; the hours and weekdays it was read. Successor edges: B first read
// within `successor_window_ms` after A (one of A's last few first reads),
// counted once per session, top-k per A. The live session (the run being
// migrated) is not history: it contributes only when each block was last read.
//
// Thread safety: pure function. Cost: O(records + blocks log blocks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "profile/access_batch.h"
#include "profile/profile.h"

namespace affinity::profile {

struct SessionTrace {
  std::string id;
  int64_t start_ms = 0;                  // wall clock
  SessionKind kind = SessionKind::kStart;
  std::string holder;                    // the host that uploaded it
  int64_t last_upload_ms = 0;            // wall clock of its latest upload
  std::vector<AccessRecord> records;     // in seq order
};

struct BuildOptions {
  int64_t now_ms = 0;
  int64_t target_ms = 0;                 // predict for this time (default: now)
  double half_life_days = 14;
  uint32_t boot_window_ms = 60'000;
  uint32_t successor_window_ms = 1'000;
  uint32_t successor_top_k = 4;
  uint32_t successor_lookback = 4;       // how many earlier first reads may precede a block
  std::string live_session;              // id of the run being migrated, if any
};

// 0.5^(age / half-life): how much an old session still counts.
double AgeDecay(int64_t start_ms, const BuildOptions& options);
// The weight of a session that started at `start_ms`, for a profile built at
// `now_ms` predicting `target_ms` (exposed for tests and docs).
double SessionWeight(int64_t start_ms, const BuildOptions& options);

Profile BuildProfile(const std::string& vm, const std::vector<SessionTrace>& sessions, const BuildOptions& options);

}  // namespace affinity::profile
