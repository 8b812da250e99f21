// The claims of a grant (docs/grants.md, "Claims"): who may do what to which
// images of which VM, when, under which migration and ownership epoch.
//
//   jti     grant id; stays the same when the grant is renewed
//   iss     issuer (the storage host's --grant-issuer)
//   holder  HolderFingerprint of the holder's TLS client key (64 hex)
//   vm      VM name;  images: image names, or ["*"] for every image of vm
//   ops     subset of ["read","prefetch","write"]
//   mig     migration id (absent: a standing grant, not tied to a migration)
//   iat, nbf, exp  seconds since the epoch (exp > nbf)
//   epoch   the VM's ownership epoch when issued (docs/grants.md, "Epochs")
//
// Parsing is strict on what it understands (types, ranges, names validated
// like URL names) and ignores claims it does not know (RFC 7519 §4).
//
// Thread safety: plain values and pure functions.
// Failure: ClaimsFromJson returns kInvalidArgument naming the bad claim.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace affinity::acl {

enum class Operation : uint8_t { kRead = 1, kPrefetch = 2, kWrite = 4 };

std::string_view OperationName(Operation op);
// "read" | "prefetch" | "write"; kInvalidArgument otherwise.
Result<Operation> ParseOperation(std::string_view name);
// "read,prefetch" -> bitmask; kInvalidArgument on an unknown or empty list.
Result<uint8_t> ParseOperationList(std::string_view comma_separated);
std::string OperationListString(uint8_t ops);  // "read,prefetch"

inline constexpr std::string_view kEveryImage = "*";
inline constexpr size_t kMaxImagesPerGrant = 256;

struct GrantClaims {
  std::string grant_id;
  std::string issuer;
  std::string holder;
  std::string vm;
  std::vector<std::string> images;
  uint8_t ops = 0;
  std::string migration;
  int64_t issued_at = 0;
  int64_t not_before = 0;
  int64_t expires = 0;
  uint64_t epoch = 0;

  bool Allows(Operation op) const { return (ops & static_cast<uint8_t>(op)) != 0; }
  bool CoversImage(std::string_view image) const;
  bool operator==(const GrantClaims&) const = default;
};

// Compact JSON object (the token payload).
std::string ClaimsToJson(const GrantClaims& claims);
Result<GrantClaims> ClaimsFromJson(std::string_view json);

// A fresh random grant id: "g-" + 24 hex digits (96 random bits, OpenSSL RAND).
std::string NewGrantId();

}  // namespace affinity::acl
