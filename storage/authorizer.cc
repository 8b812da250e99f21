#include "storage/authorizer.h"

#include <ctime>

#include "acl/grant_token.h"

namespace affinity::storage {
namespace {

using acl::GrantDenial;
using acl::GrantRefusal;

GrantDenial Deny(GrantRefusal r, std::string reason) { return GrantDenial{r, std::move(reason)}; }

std::string Short(const std::string& fingerprint) { return fingerprint.substr(0, 16); }

}  // namespace

std::optional<std::string> BearerToken(const std::optional<std::string>& authorization) {
  if (!authorization) return std::nullopt;
  constexpr std::string_view kScheme = "Bearer ";
  const std::string& v = *authorization;
  if (v.size() < kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(v[i])) != std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return std::nullopt;
    }
  }
  return v.substr(kScheme.size());
}

AuthVerdict Authorizer::AuthenticateHolder(const PeerIdentity& peer,
                                           const std::optional<std::string>& authorization) const {
  auto token = BearerToken(authorization);
  if (!token) {
    return Deny(GrantRefusal::kMissing, "this request needs a grant: send it as 'Authorization: Bearer <grant>'");
  }
  const int64_t now = clock_ ? clock_() : static_cast<int64_t>(std::time(nullptr));
  std::optional<acl::GrantClaims> remembered;
  {
    std::lock_guard lock(verified_mu_);
    if (auto it = verified_.find(*token); it != verified_.end()) remembered = it->second;
  }
  acl::GrantClaims claims;
  if (remembered) {
    // Signature and form were checked when it was remembered; time is checked now.
    claims = std::move(*remembered);
    if (now + acl::kClockSkewSeconds < claims.not_before) {
      return Deny(GrantRefusal::kNotYetValid, "the grant is valid from " + std::to_string(claims.not_before));
    }
    if (now >= claims.expires + acl::kClockSkewSeconds) {
      return Deny(GrantRefusal::kExpired, "the grant expired at " + std::to_string(claims.expires) +
                                              "; it is now " + std::to_string(now));
    }
  } else {
    acl::VerifyOptions options;
    options.key = key_;
    options.issuer = issuer_;
    options.now = now;
    acl::GrantVerdict verdict = acl::VerifyGrant(*token, options);
    if (auto* denial = std::get_if<GrantDenial>(&verdict)) return std::move(*denial);
    claims = std::move(std::get<acl::GrantClaims>(verdict));
    std::lock_guard lock(verified_mu_);
    if (verified_.size() >= kVerifiedCacheSize) verified_.clear();
    verified_.emplace(*token, claims);
  }
  if (claims.holder != peer.fingerprint) {
    return Deny(GrantRefusal::kWrongHolder, "grant " + claims.grant_id + " belongs to key " + Short(claims.holder) +
                                                "..., but this connection's certificate key is " +
                                                Short(peer.fingerprint) + "...");
  }
  return claims;
}

AuthVerdict Authorizer::Check(const PeerIdentity& peer, const std::optional<std::string>& authorization,
                              const std::string& vm, const std::string& image, std::optional<acl::Operation> op,
                              std::string* open_migration) const {
  AuthVerdict verdict = AuthenticateHolder(peer, authorization);
  if (std::holds_alternative<GrantDenial>(verdict)) return verdict;
  auto& claims = std::get<acl::GrantClaims>(verdict);
  if (registry_->IsRevoked(claims.grant_id)) {
    return Deny(GrantRefusal::kRevoked, "grant " + claims.grant_id + " was revoked");
  }
  if (!claims.migration.empty()) {
    auto m = registry_->Find(claims.migration);
    if (!m.ok()) return Deny(GrantRefusal::kRevoked, "grant " + claims.grant_id + " names unknown migration " + claims.migration);
    if (m->vm != claims.vm) {
      return Deny(GrantRefusal::kOutOfScope, "migration " + m->id + " is of vm '" + m->vm + "', not '" + claims.vm + "'");
    }
    if (m->state == MigrationState::kAborted || m->state == MigrationState::kExpired) {
      return Deny(GrantRefusal::kRevoked, "migration " + m->id + " was " + std::string(MigrationStateName(m->state)) +
                                              "; its grants are revoked");
    }
    if (open_migration != nullptr && m->open()) *open_migration = m->id;
  }
  const VmOwnership ownership = registry_->Ownership(claims.vm);
  if (claims.epoch != ownership.epoch) {
    return Deny(GrantRefusal::kStaleEpoch, "grant " + claims.grant_id + " is of epoch " + std::to_string(claims.epoch) +
                                               "; vm '" + claims.vm + "' is at epoch " +
                                               std::to_string(ownership.epoch) + " (ownership changed: renew it)");
  }
  if (claims.vm != vm) {
    return Deny(GrantRefusal::kOutOfScope, "grant " + claims.grant_id + " is for vm '" + claims.vm + "', not '" + vm + "'");
  }
  if (!image.empty() && !claims.CoversImage(image)) {
    return Deny(GrantRefusal::kOutOfScope, "grant " + claims.grant_id + " does not cover image '" + image + "'");
  }
  // `read` covers reads of any purpose; `prefetch` alone only reads marked as prefetch.
  const bool allowed = !op || claims.Allows(*op) ||
                       (*op == acl::Operation::kPrefetch && claims.Allows(acl::Operation::kRead));
  if (!allowed) {
    return Deny(GrantRefusal::kOutOfScope, "grant " + claims.grant_id + " allows " +
                                               acl::OperationListString(claims.ops) + ", not " +
                                               std::string(acl::OperationName(*op)));
  }
  if (op == acl::Operation::kWrite && claims.holder != ownership.owner) {
    return Deny(GrantRefusal::kNotOwner, "vm '" + vm + "' is owned by " +
                                             (ownership.owner.empty() ? std::string("nobody") : Short(ownership.owner) + "...") +
                                             "; only its owner may write");
  }
  return verdict;
}

AuthVerdict Authorizer::Authorize(const PeerIdentity& peer, const std::optional<std::string>& authorization,
                                  const std::string& vm, const std::string& image, acl::Operation op,
                                  std::string* open_migration) const {
  return Check(peer, authorization, vm, image, op, open_migration);
}

AuthVerdict Authorizer::AuthorizeVm(const PeerIdentity& peer, const std::optional<std::string>& authorization,
                                    const std::string& vm) const {
  return Check(peer, authorization, vm, "", std::nullopt, nullptr);
}

}  // namespace affinity::storage
