// StateDb: the storage host's persistent state, --state/state.sqlite (WAL).
//
// Today it holds one thing: a content *generation* per image. A destination
// caches an image's bytes together with the generation they were fetched at;
// when the generation changes, its cached bytes are stale (docs/protocol.md).
//
// Rule (NextGeneration): an image seen for the first time is generation 1;
// whenever its identity (size, mtime in ns, inode) differs from the identity
// recorded with its generation, the generation goes up by one and the new
// identity is recorded. Table image_generations(vm, image, size, mtime_ns,
// inode, generation), primary key (vm, image).
//
// An in-memory memo keyed by (vm, image) remembers the last identity and
// generation, so a data request whose stat() matches touches no SQLite.
//
// Thread safety: every method from any thread; one mutex guards the
// connection and the memo (the critical section is a map lookup, or one
// small SQLite transaction when an image changed).
// Failure: SQLite errors are returned as Status (kIoError and friends) with
// the database path; the memo is only updated after the row was written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/sqlite.h"
#include "common/status.h"

namespace affinity::storage {

// What makes an image's content "the same" between two stat() calls.
struct FileIdentity {
  uint64_t size = 0;
  uint64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

struct GenerationRecord {
  FileIdentity identity;
  uint64_t generation = 0;
};

// The generation an image has now, given what was recorded for it (if
// anything) and its current identity. Pure; see the rule above.
uint64_t NextGeneration(const std::optional<GenerationRecord>& recorded, const FileIdentity& now);

class StateDb {
 public:
  static constexpr const char* kFileName = "state.sqlite";

  // Creates `state_dir` (0700) if missing, opens or creates the database.
  static Result<std::unique_ptr<StateDb>> Open(const std::string& state_dir);

  // The generation of vm/image whose current identity is `now`; records a
  // change durably before returning it.
  Result<uint64_t> Generation(const std::string& vm, const std::string& image, const FileIdentity& now);

  // After a write made through the API (its blocks are tracked one by one,
  // storage/chunk_tracker.h): the image's identity went from `before` to
  // `after` and its generation stays, unless `before` was already not what
  // was recorded (an out-of-band change), which bumps it as usual.
  Result<uint64_t> AdoptWrite(const std::string& vm, const std::string& image, const FileIdentity& before,
                              const FileIdentity& after);
  // Before an API write touches the file: records (table write_intents) that
  // a change of its identity from now on is that write's. AdoptWrite closes
  // the intent. If the server dies between the two, the next Generation()
  // that sees the image changed adopts the change instead of bumping the
  // generation: the write was never answered, and its sender (which still
  // holds it dirty) sends it again. Callers serialize writes and reads of an
  // image (VolumeStore's stripes), so an open intent seen by Generation() is
  // always one of a write that did not finish.
  // `current`: the file's identity now (an intent still open from a write
  // that never finished is settled against it first).
  Status BeginWrite(const std::string& vm, const std::string& image, const FileIdentity& current);

 private:
  explicit StateDb(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Result<std::optional<GenerationRecord>> Load(const std::string& vm, const std::string& image);
  Status Store(const std::string& vm, const std::string& image, const GenerationRecord& record);

  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;                                          // guarded by mu_
  std::map<std::pair<std::string, std::string>, GenerationRecord> memo_;  // guarded by mu_
  std::set<std::pair<std::string, std::string>> intents_;                 // guarded by mu_; as in write_intents
  Status CloseIntent(const std::pair<std::string, std::string>& key);
};

}  // namespace affinity::storage
