// AccessLog: the accesses destinations observed and uploaded, the raw input
// of the profiler (--state/profile.sqlite, docs/profile.md).
//
//   sessions(session, vm, holder, start_ms, received_ms, kind, last_ms)
//   imported_profiles(vm, profile, imported_ms)
//   served(vm, holder, image, offset, length, at_ms)   what the storage host served
//   accesses(session, seq, image, offset, length, op, t_us)  primary key (session, seq)
//
// A batch is stored in one transaction; a record already stored (same
// session and seq: a batch sent again after a lost reply) is counted as a
// duplicate and not stored twice. A session belongs to the vm and holder
// that first uploaded it: another host cannot add to it.
//
// Thread safety: every method from any thread (one mutex).
// Failure: SQLite errors as Status; kPermissionDenied for another host's or
// another VM's session.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "profile/access_batch.h"
#include "profile/profile_builder.h"

namespace affinity::storage {

struct SessionSummary {
  std::string session;
  std::string holder;
  int64_t start_ms = 0;
  uint64_t records = 0;
};

// One range the storage host served to a reader (ServedLog).
struct ServedRead {
  std::string holder, vm, image;
  uint64_t offset = 0, length = 0;
  int64_t at_ms = 0;  // wall clock
};

class AccessLog {
 public:
  static constexpr const char* kFileName = "profile.sqlite";

  static Result<std::unique_ptr<AccessLog>> Open(const std::string& state_dir);

  struct Stored {
    uint64_t accepted = 0;
    uint64_t duplicates = 0;
  };
  Result<Stored> Record(const std::string& vm, const std::string& holder, const profile::AccessBatch& batch);
  Result<std::vector<SessionSummary>> Sessions(const std::string& vm);
  // The VM's most recent sessions with their records, oldest first.
  Result<std::vector<profile::SessionTrace>> RecentSessions(const std::string& vm, size_t max_sessions);

  // What the storage host served (ServedLog), kept 30 days.
  Status RecordServed(const std::vector<ServedRead>& reads);
  // The served reads of `vm` as sessions (one per holder and run of reads
  // without a 10-minute gap, kind arrival), leaving out every run that
  // overlaps a session the same holder uploaded (`uploaded`): its own
  // record is better. At most `max_sessions`, the most recent.
  Result<std::vector<profile::SessionTrace>> ServedSessions(const std::string& vm,
                                                            const std::vector<profile::SessionTrace>& uploaded,
                                                            size_t max_sessions);

  // A profile an operator imported (affinityctl profile import), served while
  // the VM has no history of its own.
  Status ImportProfile(const std::string& vm, std::string_view encoded);
  Result<std::optional<std::string>> ImportedProfile(const std::string& vm);

 private:
  explicit AccessLog(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // guarded by mu_
};

}  // namespace affinity::storage
