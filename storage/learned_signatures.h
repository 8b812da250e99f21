// LearnedSignatures: what VMs' histories taught about their applications, as
// guest paths (profile/signature_learner.h), kept so it carries to other VMs
// with the same applications (docs/signatures.md, "Learning from history").
//
// --state/signatures.sqlite:
//   learned(vm, image, application, path, phase, support_e4, first_ms, updated_ms,
//           ranges, PRIMARY KEY(vm, image, application, path))
// support in 1/10000 units; ranges "offset+length,..." of the file's data
// (empty: all of it). Each profile build of a VM with history replaces
// that VM's rows for the image (what its latest 64 sessions say).
//
// Thread safety: every method from any thread (one mutex over the db).
// Failure: SQLite errors as Status; nothing is half-written (transactions).
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "profile/signature_learner.h"

namespace affinity::storage {

class LearnedSignatures {
 public:
  static Result<std::unique_ptr<LearnedSignatures>> Open(const std::string& state_dir);

  // Replaces what `vm`'s history of `image` taught.
  Status Replace(const std::string& vm, const std::string& image, const std::vector<profile::LearnedPath>& learned,
                 int64_t now_ms);

  // What the OTHER VMs taught about `applications`, one entry per
  // (application, path): support = the sum of their supports over the number
  // of VMs that taught that application anything (a path only one VM of
  // three reads is a third as likely); first_ms = their mean; phase = the
  // earliest any of them saw; ranges = all they read of it.
  Result<std::vector<profile::LearnedPath>> Aggregate(const std::set<std::string>& applications,
                                                      const std::string& exclude_vm) const;

 private:
  explicit LearnedSignatures(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace affinity::storage
