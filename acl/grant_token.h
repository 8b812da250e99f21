// Grant tokens: JWS compact serialization (RFC 7515 §7.1) of a JWT (RFC 7519)
// signed with Ed25519 ("alg":"EdDSA", RFC 8037):
//
//   base64url(header) "." base64url(claims JSON) "." base64url(64-byte signature)
//   header = {"alg":"EdDSA","typ":"JWT","kid":"<key id>"}
//
// Verification order, each step with its own refusal (grant_refusal.h):
// size (<= kMaxTokenBytes, before any decoding) -> three base64url parts ->
// header JSON -> alg pinned to EdDSA and no `crit` -> kid is the trusted key
// -> Ed25519 signature over the first two parts -> claims JSON -> issuer ->
// time window (nbf - skew <= now < exp + skew). The algorithm is never taken
// from the token to choose how to verify: only EdDSA with the configured
// key is ever tried, so "alg":"none" or an HMAC-with-the-public-key token is
// refused before any crypto runs.
//
// What verification here does NOT decide (the storage host's Authorizer
// does): holder = TLS peer, revocation, epoch, scope, ownership.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "acl/grant_claims.h"
#include "acl/grant_refusal.h"
#include "acl/signing_key.h"
#include "common/status.h"

namespace affinity::acl {

inline constexpr size_t kMaxTokenBytes = 8192;
// Clocks of the storage host and its clients may differ this much.
inline constexpr int64_t kClockSkewSeconds = 30;

Result<std::string> SignGrant(const SigningKey& key, const GrantClaims& claims);

struct VerifyOptions {
  const VerifyingKey* key = nullptr;
  std::string issuer;       // required `iss`
  int64_t now = 0;          // seconds since the epoch
  int64_t clock_skew = kClockSkewSeconds;
};

// Either the verified claims or why not.
using GrantVerdict = std::variant<GrantClaims, GrantDenial>;

GrantVerdict VerifyGrant(std::string_view token, const VerifyOptions& options);

// Decodes header and claims WITHOUT checking the signature or the time (for
// `affinityctl grant inspect` and for clients reading their own grant).
struct DecodedGrant {
  std::string header_json;
  GrantClaims claims;
};
Result<DecodedGrant> DecodeGrant(std::string_view token);

}  // namespace affinity::acl
