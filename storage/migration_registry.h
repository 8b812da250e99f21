// MigrationRegistry: who owns each VM's images, and the migration state
// machine (docs/grants.md, "Ownership" and "Migrations"), persisted in
// --state/control.sqlite with synchronous=FULL: a change is on disk before
// the call that made it returns, so a storage host killed at any instant and
// restarted keeps every state and every guarantee.
//
//   vm:        owner (holder fingerprint, or none yet) + ownership epoch
//   migration: begun -> committed | aborted | expired
//
// Rules:
// * At most one open (begun) migration per VM; Begin refuses a second.
// * Commit: begun -> committed; the destination becomes the owner and the
//   VM's epoch goes up by one, so every grant of the old epoch (the source's
//   included) is dead from that instant.
// * Abort: begun -> aborted; grants of that migration are revoked.
// * A migration still begun after its deadline is expired by the registry
//   itself: lookups (Find, Ownership) report it expired from that second,
//   without writing; a sweeper thread (every 0.5 s) and every state change
//   record it. Same effect as abort.
// * Every other transition is refused with kFailedPrecondition naming the
//   migration and its state ("migration m-... is aborted; it cannot be
//   committed").
// * SetOwner (initial placement) is refused while a migration is open and
//   also bumps the epoch.
// * Revoke(grant id) kills a standing grant and its renewals.
//
// Thread safety: every method from any thread; one mutex guards the
// in-memory mirror and the database (control-plane calls are rare; data
// requests only read the mirror).
// Failure: SQLite errors as Status with the database path; nothing changes
// in memory unless the row was written.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"

namespace affinity::storage {

enum class MigrationState { kBegun, kCommitted, kAborted, kExpired };
std::string_view MigrationStateName(MigrationState s);  // "begun", ...

struct Migration {
  std::string id;
  std::string vm;
  std::string source;       // owner at begin ("" if the VM had none)
  std::string destination;  // holder fingerprint of the destination host
  std::vector<std::string> images;  // scope of its grants ("*" = all)
  MigrationState state = MigrationState::kBegun;
  int64_t created_at = 0;   // seconds since the epoch
  int64_t deadline = 0;     // still begun after this: expired
  int64_t ended_at = 0;     // 0 while begun
  uint64_t epoch_at_begin = 0;
  bool open() const { return state == MigrationState::kBegun; }
};

struct VmOwnership {
  std::string owner;           // "" = nobody may write
  uint64_t epoch = 1;          // a VM never seen is at epoch 1
  std::string open_migration;  // id of the begun migration, if any
};

class MigrationRegistry {
 public:
  static constexpr const char* kFileName = "control.sqlite";

  // Opens (creating) --state/control.sqlite and starts the expiry sweeper.
  static Result<std::unique_ptr<MigrationRegistry>> Open(const std::string& state_dir);
  ~MigrationRegistry();
  MigrationRegistry(const MigrationRegistry&) = delete;
  MigrationRegistry& operator=(const MigrationRegistry&) = delete;

  VmOwnership Ownership(const std::string& vm);
  Result<VmOwnership> SetOwner(const std::string& vm, const std::string& holder);

  Result<Migration> Begin(const std::string& vm, const std::string& destination,
                          const std::vector<std::string>& images, int64_t ttl_seconds);
  Result<Migration> Commit(const std::string& id);
  Result<Migration> Abort(const std::string& id);
  // kNotFound for an unknown id.
  Result<Migration> Find(const std::string& id);

  Status Revoke(const std::string& grant_id);
  bool IsRevoked(const std::string& grant_id);

 private:
  explicit MigrationRegistry(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Status Load();
  Status StoreVm(const std::string& vm, const VmOwnership& o);
  Status StoreMigration(const Migration& m);
  Result<Migration*> Transition(const std::string& id, MigrationState to);
  void ExpireLocked(int64_t now);
  void Sweep();

  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;               // guarded by mu_
  std::map<std::string, VmOwnership> vms_;     // guarded by mu_
  std::map<std::string, Migration> migrations_;  // guarded by mu_
  std::set<std::string> open_;                 // ids of begun migrations; guarded by mu_
  std::set<std::string> revoked_;              // guarded by mu_
  std::condition_variable stop_cv_;
  bool stopping_ = false;                      // guarded by mu_
  std::thread sweeper_;
};

}  // namespace affinity::storage
