// Authorizer: decides whether a request carrying a grant may do what it asks
// (docs/grants.md, "What the storage host checks"). After the token itself
// verifies (acl/grant_token.h: signature, pinned algorithm, issuer, time):
//
//   1. holder == the TLS peer's key fingerprint        else wrong_holder
//   2. the grant id was not revoked                      else revoked
//   3. a migration grant: its migration exists, is of
//      this VM and is begun or committed                 else revoked
//   4. the grant's epoch is the VM's current epoch       else stale_epoch
//   5. VM, image and operation are in the grant's scope  else out_of_scope
//      (`read` covers prefetch-purpose reads too; `prefetch` alone covers
//      nothing else)
//   6. write: the holder owns the VM                     else not_owner
//
// Verified tokens are remembered (token bytes -> claims, at most
// kVerifiedCacheSize, cleared when full): the Ed25519 check runs once per
// token, not once per request, while the time window and steps 10..14 are
// checked on every request. Only a token that verified is remembered, keyed
// by its exact bytes, so the memo can never accept what verification would
// refuse.
//
// Thread safety: every method from any thread (state lives in the registry;
// the memo has its own mutex).
// Failure: a GrantDenial with its code and a reason naming the values.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <variant>

#include "acl/grant_claims.h"
#include "acl/grant_refusal.h"
#include "acl/signing_key.h"
#include "storage/migration_registry.h"
#include "storage/peer_identity.h"

namespace affinity::storage {

using AuthVerdict = std::variant<acl::GrantClaims, acl::GrantDenial>;

// "Bearer <token>" -> token; nullopt if absent or another scheme.
std::optional<std::string> BearerToken(const std::optional<std::string>& authorization);

class Authorizer {
 public:
  using Clock = std::function<int64_t()>;  // seconds since the epoch

  // All must outlive the authorizer. `clock` defaults to the system clock
  // (tests pass their own to move time past a token's expiry).
  Authorizer(const acl::VerifyingKey* key, std::string issuer, MigrationRegistry* registry, Clock clock = {})
      : key_(key), issuer_(std::move(issuer)), registry_(registry), clock_(std::move(clock)) {}

  // Checks 1..6 for `op` on vm (and image, if not empty). If the grant's
  // migration is open (begun), its id goes to `open_migration` (if given):
  // what is served under it must be tracked.
  AuthVerdict Authorize(const PeerIdentity& peer, const std::optional<std::string>& authorization,
                        const std::string& vm, const std::string& image, acl::Operation op,
                        std::string* open_migration = nullptr) const;

  // For any operation on vm: checks 1..5 without the operation.
  AuthVerdict AuthorizeVm(const PeerIdentity& peer, const std::optional<std::string>& authorization,
                          const std::string& vm) const;

  // Token, holder and (if `migration` is set) that the grant is of that
  // migration: enough to ask about a migration's state, or to renew, even
  // when the grant has been revoked or its epoch has passed.
  AuthVerdict AuthenticateHolder(const PeerIdentity& peer, const std::optional<std::string>& authorization) const;

  const std::string& issuer() const { return issuer_; }

 private:
  AuthVerdict Check(const PeerIdentity& peer, const std::optional<std::string>& authorization, const std::string& vm,
                    const std::string& image, std::optional<acl::Operation> op, std::string* open_migration) const;

  const acl::VerifyingKey* const key_;
  const std::string issuer_;
  MigrationRegistry* const registry_;
  const Clock clock_;

  static constexpr size_t kVerifiedCacheSize = 4096;
  mutable std::mutex verified_mu_;
  mutable std::unordered_map<std::string, acl::GrantClaims> verified_;  // guarded by verified_mu_
};

}  // namespace affinity::storage
