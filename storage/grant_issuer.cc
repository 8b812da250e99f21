#include "storage/grant_issuer.h"

#include <algorithm>
#include <ctime>

#include "acl/grant_token.h"

namespace affinity::storage {
namespace {

using acl::GrantDenial;
using acl::GrantRefusal;
using acl::Operation;

constexpr uint8_t kOwnerOps = static_cast<uint8_t>(Operation::kRead) | static_cast<uint8_t>(Operation::kPrefetch) |
                              static_cast<uint8_t>(Operation::kWrite);
constexpr uint8_t kDestinationOps = static_cast<uint8_t>(Operation::kRead) | static_cast<uint8_t>(Operation::kPrefetch);

GrantDenial Deny(GrantRefusal r, std::string reason) { return GrantDenial{r, std::move(reason)}; }

}  // namespace

IssueResult GrantIssuer::Sign(acl::GrantClaims claims, int64_t ttl_seconds) const {
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  claims.issuer = issuer_;
  claims.issued_at = now;
  claims.not_before = now;
  claims.expires = now + std::clamp<int64_t>(ttl_seconds, 1, max_ttl_);
  auto token = acl::SignGrant(*key_, claims);
  if (!token.ok()) return token.status();
  return IssuedGrant{std::move(*token), std::move(claims)};
}

IssueResult GrantIssuer::Issue(const StandingGrantRequest& request) const {
  const VmOwnership ownership = registry_->Ownership(request.vm);
  if ((request.ops & static_cast<uint8_t>(Operation::kWrite)) != 0 && request.holder != ownership.owner) {
    return Deny(GrantRefusal::kNotOwner, "vm '" + request.vm + "' is owned by " +
                                             (ownership.owner.empty() ? std::string("nobody") : ownership.owner) +
                                             "; a write grant is only issued to its owner");
  }
  acl::GrantClaims c;
  c.grant_id = acl::NewGrantId();
  c.holder = request.holder;
  c.vm = request.vm;
  c.images = request.images;
  c.ops = request.ops;
  c.epoch = ownership.epoch;
  return Sign(std::move(c), request.ttl_seconds);
}

IssueResult GrantIssuer::ForMigration(const Migration& m, int64_t ttl_seconds) const {
  acl::GrantClaims c;
  c.grant_id = acl::NewGrantId();
  c.holder = m.destination;
  c.vm = m.vm;
  c.images = m.images;
  c.ops = kDestinationOps;
  c.migration = m.id;
  c.epoch = m.epoch_at_begin;
  return Sign(std::move(c), ttl_seconds);
}

IssueResult GrantIssuer::Renew(const acl::GrantClaims& current) const {
  if (registry_->IsRevoked(current.grant_id)) {
    return Deny(GrantRefusal::kRevoked, "grant " + current.grant_id + " was revoked; it cannot be renewed");
  }
  acl::GrantClaims next = current;
  const VmOwnership ownership = registry_->Ownership(current.vm);
  if (!current.migration.empty()) {
    auto m = registry_->Find(current.migration);
    if (!m.ok() || m->vm != current.vm) {
      return Deny(GrantRefusal::kRevoked, "grant " + current.grant_id + " names unknown migration " + current.migration);
    }
    switch (m->state) {
      case MigrationState::kAborted:
      case MigrationState::kExpired:
        return Deny(GrantRefusal::kRevoked, "migration " + m->id + " was " +
                                                std::string(MigrationStateName(m->state)) + "; its grants are revoked");
      case MigrationState::kCommitted:
        if (current.holder != m->destination || ownership.owner != m->destination) {
          return Deny(GrantRefusal::kStaleEpoch, "migration " + m->id + " was committed and ownership moved on");
        }
        next.ops = kOwnerOps;  // the destination now owns the images
        next.epoch = ownership.epoch;
        break;
      case MigrationState::kBegun:
        break;
    }
  }
  if (next.epoch != ownership.epoch) {
    return Deny(GrantRefusal::kStaleEpoch, "grant " + current.grant_id + " is of epoch " +
                                               std::to_string(current.epoch) + "; vm '" + current.vm + "' is at " +
                                               std::to_string(ownership.epoch) + ": ask for a new grant");
  }
  if (next.Allows(Operation::kWrite) && next.holder != ownership.owner) {
    return Deny(GrantRefusal::kNotOwner, "the holder no longer owns vm '" + current.vm + "'");
  }
  return Sign(std::move(next), current.expires - current.not_before);
}

}  // namespace affinity::storage
