// GrantIssuer: makes and renews the grants this storage host signs
// (docs/grants.md, "Issuing and renewing").
//
// * Issue (admin): a standing grant (no migration) for a holder. `write` is
//   refused (not_owner) unless the holder owns the VM. The epoch is the VM's
//   current one. Lifetime: the asked TTL, at most --max-grant-ttl.
// * ForMigration: the destination's read-only grant (read, prefetch) made
//   at `migrate begin`, bound to the migration id.
// * Renew (the holder, with its current grant): the same grant id and
//   scope, a fresh time window of the same length (capped). A migration
//   grant renews while its migration is begun; once committed, the
//   destination's renewal is upgraded to the owner's grant (read, prefetch,
//   write) at the new epoch; the source's is refused (stale_epoch). Aborted
//   or expired migrations and revoked grants are refused (revoked).
//
// Thread safety: every method from any thread.
// Failure: a GrantDenial for a refusal; a Status (kInternal) if signing fails.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "acl/grant_claims.h"
#include "acl/grant_refusal.h"
#include "acl/signing_key.h"
#include "common/status.h"
#include "storage/migration_registry.h"

namespace affinity::storage {

struct IssuedGrant {
  std::string token;
  acl::GrantClaims claims;
};

// A grant, a refusal (403 with its code), or a failure of ours (signing: 500).
using IssueResult = std::variant<IssuedGrant, acl::GrantDenial, Status>;

struct StandingGrantRequest {
  std::string holder;
  std::string vm;
  std::vector<std::string> images;
  uint8_t ops = 0;
  int64_t ttl_seconds = 0;
};

class GrantIssuer {
 public:
  static constexpr int64_t kDefaultMaxTtlSeconds = 3600;

  // Both must outlive the issuer.
  GrantIssuer(const acl::SigningKey* key, std::string issuer, MigrationRegistry* registry,
              int64_t max_ttl_seconds = kDefaultMaxTtlSeconds)
      : key_(key), issuer_(std::move(issuer)), registry_(registry), max_ttl_(max_ttl_seconds) {}

  IssueResult Issue(const StandingGrantRequest& request) const;
  IssueResult ForMigration(const Migration& migration, int64_t ttl_seconds) const;
  IssueResult Renew(const acl::GrantClaims& current) const;

  const std::string& issuer() const { return issuer_; }
  int64_t max_ttl() const { return max_ttl_; }

 private:
  IssueResult Sign(acl::GrantClaims claims, int64_t ttl_seconds) const;

  const acl::SigningKey* const key_;
  const std::string issuer_;
  MigrationRegistry* const registry_;
  const int64_t max_ttl_;
};

}  // namespace affinity::storage
