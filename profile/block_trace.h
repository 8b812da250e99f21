// Block traces: the CSV files the benchmarks replay and the profile builder
// can learn from (docs/benchmarks.md):
//
//   time_s,offset,length,op        header (optional)
//   0.000125,1048576,4096,R        seconds since the session started; R or W
//
// Blank lines and lines starting with '#' are skipped.
//
// Thread safety: pure functions.
// Failure: kInvalidArgument "PATH:LINE: reason" for a malformed line,
// kIoError / kNotFound when the file cannot be read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "profile/profile_builder.h"

namespace affinity::profile {

struct TraceRecord {
  double time_s = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool write = false;
};

Result<std::vector<TraceRecord>> LoadBlockTrace(const std::string& path);

// A trace as one session of `image` (records numbered from 0). Records at or
// after `cut_s` are left out (a session observed until a migration's cut-over).
SessionTrace TraceToSession(const std::vector<TraceRecord>& trace, const std::string& image, std::string id,
                            int64_t start_ms, SessionKind kind, double cut_s = -1);

}  // namespace affinity::profile
