#include "acl/grant_refusal.h"

#include <array>

namespace affinity::acl {
namespace {

struct Entry {
  GrantRefusal refusal;
  std::string_view code;
  int status;
};

constexpr std::array kEntries = {
    Entry{GrantRefusal::kMissing, "missing_grant", 401},
    Entry{GrantRefusal::kMalformed, "malformed_grant", 401},
    Entry{GrantRefusal::kOversized, "oversized_grant", 401},
    Entry{GrantRefusal::kBadAlgorithm, "bad_algorithm", 401},
    Entry{GrantRefusal::kUnknownKey, "unknown_key", 401},
    Entry{GrantRefusal::kBadSignature, "bad_signature", 401},
    Entry{GrantRefusal::kWrongIssuer, "wrong_issuer", 401},
    Entry{GrantRefusal::kNotYetValid, "not_yet_valid", 401},
    Entry{GrantRefusal::kExpired, "expired", 401},
    Entry{GrantRefusal::kWrongHolder, "wrong_holder", 403},
    Entry{GrantRefusal::kRevoked, "revoked", 403},
    Entry{GrantRefusal::kStaleEpoch, "stale_epoch", 403},
    Entry{GrantRefusal::kOutOfScope, "out_of_scope", 403},
    Entry{GrantRefusal::kNotOwner, "not_owner", 403},
    Entry{GrantRefusal::kMigrationState, "migration_state", 403},
    Entry{GrantRefusal::kAdminRequired, "admin_required", 403},
};

const Entry& Find(GrantRefusal r) {
  for (const Entry& e : kEntries) {
    if (e.refusal == r) return e;
  }
  return kEntries[1];
}

}  // namespace

std::string_view GrantRefusalCode(GrantRefusal r) { return Find(r).code; }
int GrantRefusalStatus(GrantRefusal r) { return Find(r).status; }

}  // namespace affinity::acl
