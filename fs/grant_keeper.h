// GrantKeeper: the destination's side of grants and of the migration
// handshake (docs/grants.md, "Destination").
//
// * Holds the current grant (from --grant FILE) and gives it to every request
//   (Authorization()). The file is re-read each round: an operator installs
//   a new grant by replacing it (atomically); renewed grants are written back
//   to it, so a restarted daemon starts with the newest one.
// * Renews a grant once two thirds of its lifetime have passed
//   (POST /v1/grants/renew).
// * For a migration grant, polls the migration (GET /v1/migrations/{id})
//   every round (--grant-poll, 2 s by default) and at once when the data path
//   reports a refusal (Poke) or an operator asks (RefreshNow, the
//   `user.affinity.control=refresh` xattr that `affinityctl migrate ... --mount` sets):
//     aborted/expired -> revoke access (reads fail with EACCES), purge every
//                        chunk fetched under it, drop the kernel page cache;
//     committed       -> invalidate the stale ranges the storage host names
//                        (cache and kernel page cache), record that in the
//                        index (once per migration, restart-safe), then renew:
//                        the grant becomes the owner's.
//   A standing grant refused as revoked revokes access too (nothing to purge).
// * A new grant in the file after a revocation restores access.
//
// Thread model: one keeper thread runs every round; RefreshNow() waits for a
// round to complete. Authorization() and Snapshot() from any thread.
// Failure: Load() returns kInvalidArgument naming the file when the grant
// cannot be read or decoded, or is for another VM. Network failures in a
// round are logged and retried next round.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "acl/grant_claims.h"
#include "common/byte_range.h"
#include "common/status.h"
#include "fetcher/https_client.h"

namespace affinity::fs {

class AccessState;
class ChunkIndex;

struct GrantKeeperOptions {
  std::string grant_file;
  std::string vm;
  std::chrono::milliseconds poll_interval{2000};
  std::chrono::milliseconds request_timeout{10000};
};

struct StaleImageRange {
  std::string image;
  ByteRange range;
};

struct GrantKeeperHooks {
  // Drop every chunk fetched under the migration (access already revoked).
  std::function<Status(const std::string& migration)> purge;
  // Drop cached chunks overlapping each range (cache and kernel page cache).
  std::function<Status(const std::vector<StaleImageRange>& stale)> invalidate;
  // Drop the kernel page cache of every image.
  std::function<void()> drop_kernel_cache;
};

struct GrantSnapshot {
  std::string grant_id;
  std::string migration;
  std::string migration_state;  // "", begun, committed, aborted, expired
  std::string ops;
  int64_t expires = 0;
  uint64_t epoch = 0;
  bool revoked = false;
  std::string revoked_reason;
  uint64_t renewals = 0;
  uint64_t purges = 0;
  uint64_t invalidated_ranges = 0;
};

class GrantKeeper {
 public:
  static Result<std::unique_ptr<GrantKeeper>> Load(GrantKeeperOptions options);
  ~GrantKeeper();
  GrantKeeper(const GrantKeeper&) = delete;
  GrantKeeper& operator=(const GrantKeeper&) = delete;

  // "Bearer <grant>".
  std::string Authorization() const;
  // The grant in use (decoded, not verified: it is our own).
  acl::GrantClaims claims() const {
    std::lock_guard lock(mu_);
    return claims_;
  }

  // Starts the keeper thread. All must outlive the keeper (stop it first).
  void Start(fetcher::HttpsClient* client, AccessState* access, ChunkIndex* index, GrantKeeperHooks hooks);
  void Stop();
  // The data path saw a grant refusal (`code`: revoked, stale_epoch, expired, ...).
  void Poke(const std::string& code);
  // Runs a round now and waits for it (bounded by twice the request timeout).
  Status RefreshNow();
  GrantSnapshot Snapshot() const;

 private:
  explicit GrantKeeper(GrantKeeperOptions options) : options_(std::move(options)) {}
  Status Install(const std::string& token, bool write_back);
  void Loop();
  void Round();
  void ReloadFile();
  void CheckMigration();
  void MaybeRenew(bool force);
  void RevokeAccess(const std::string& migration, const std::string& reason, bool purge);
  void ApplyCommit(const std::string& migration, const std::vector<StaleImageRange>& stale);

  const GrantKeeperOptions options_;

  // Keeper-thread state (Start..Stop), also read under mu_ by Snapshot.
  fetcher::HttpsClient* client_ = nullptr;
  AccessState* access_ = nullptr;
  ChunkIndex* index_ = nullptr;
  GrantKeeperHooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string token_;                 // guarded by mu_
  acl::GrantClaims claims_;           // guarded by mu_
  GrantSnapshot snap_;                // guarded by mu_; the keeper's own state (claims_ fills the rest)
  bool stop_ = false;                 // guarded by mu_
  bool poked_ = false;                // guarded by mu_
  std::string poke_code_;             // guarded by mu_
  uint64_t rounds_done_ = 0;          // guarded by mu_
  uint64_t rounds_wanted_ = 0;        // guarded by mu_
  std::thread thread_;
};

}  // namespace affinity::fs
