// Why a grant (or a control-plane call) was refused: one machine-readable
// code per cause, sent as the `Affinity-Error` header and the JSON `error` of
// the 401/403 reply (docs/grants.md, "Refusals"), plus a human reason.
//
// 401: the token itself is unusable (absent, malformed, bad signature,
// outside its time window). 403: the token is genuine but does not allow
// this request (another holder, revoked, out of scope, not the owner, ...).
//
// Thread safety: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace affinity::acl {

enum class GrantRefusal {
  kMissing,         // 401 missing_grant: no `Authorization: Bearer` token
  kMalformed,       // 401 malformed_grant: not a JWS compact token we can read
  kOversized,       // 401 oversized_grant: longer than kMaxTokenBytes
  kBadAlgorithm,    // 401 bad_algorithm: alg is not EdDSA, or crit is set
  kUnknownKey,      // 401 unknown_key: kid names a key this host does not trust
  kBadSignature,    // 401 bad_signature
  kWrongIssuer,     // 401 wrong_issuer
  kNotYetValid,     // 401 not_yet_valid
  kExpired,         // 401 expired
  kWrongHolder,     // 403 wrong_holder: the TLS peer's key is not the grant's holder
  kRevoked,         // 403 revoked: the grant or its migration was revoked, aborted or expired
  kStaleEpoch,      // 403 stale_epoch: ownership changed since the grant was issued
  kOutOfScope,      // 403 out_of_scope: VM, image or operation not granted
  kNotOwner,        // 403 not_owner: writes (and write grants) only for the owner
  kMigrationState,  // 403 migration_state: not allowed in the migration's state
  kAdminRequired,   // 403 admin_required: control-plane call without an admin certificate
};

std::string_view GrantRefusalCode(GrantRefusal r);  // "expired", ...
int GrantRefusalStatus(GrantRefusal r);             // 401 or 403

// The verdict of a check: ok, or a refusal with its reason.
struct GrantDenial {
  GrantRefusal refusal;
  std::string reason;
};

}  // namespace affinity::acl
