// AccessBatch: the accesses a destination observed, as uploaded to the
// storage host's profiler (POST /v1/vms/{vm}/accesses, docs/profile.md).
//
//   {"session":"s-...","session_start_ms":1795530591000,"kind":"start",
//    "records":[[seq, "image", offset, length, "R"|"W", t_us], ...]}
//
// `session` names one VM run on one host (a VM start or a migration arrival);
// `seq` numbers its records from 0, so a batch sent twice is recognised and
// stored once; `t_us` is the time since the session started.
//
// Thread safety: plain values and pure functions.
// Failure: DecodeAccessBatch returns kInvalidArgument naming the first bad
// field (it reads what any TLS client may send).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace affinity::profile {

enum class AccessOp : uint8_t { kRead = 0, kWrite = 1 };

// A session is a VM start (it boots: boot files come first) or a migration
// arrival (it continues a running guest). Sent as "kind": "start" | "arrival";
// a batch without it is a start.
enum class SessionKind : uint8_t { kStart = 0, kArrival = 1 };
const char* SessionKindName(SessionKind kind);

struct AccessRecord {
  uint64_t seq = 0;
  std::string image;
  uint64_t offset = 0;
  uint64_t length = 0;
  AccessOp op = AccessOp::kRead;
  uint64_t t_us = 0;
  bool operator==(const AccessRecord&) const = default;
};

struct AccessBatch {
  std::string session;
  int64_t session_start_ms = 0;  // wall clock, for time-of-day and weekly patterns
  SessionKind kind = SessionKind::kStart;
  std::vector<AccessRecord> records;
  bool operator==(const AccessBatch&) const = default;
};

inline constexpr size_t kMaxRecordsPerBatch = 8192;

std::string EncodeAccessBatch(const AccessBatch& batch);
Result<AccessBatch> DecodeAccessBatch(std::string_view json);

// "s-" + 24 random hex digits.
std::string NewSessionId();

}  // namespace affinity::profile
