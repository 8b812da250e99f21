// libFuzzer target: the grant verifier, which reads a token any TLS client
// can send. It must refuse everything but genuine tokens, never crash, and
// a token it accepts must decode to the same claims and re-sign to a token
// that verifies to them again. The key is fixed so the seed corpus
// (tests/fuzz/corpus/fuzz_grant_token) holds tokens that really verify.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "acl/grant_token.h"

namespace {

constexpr std::string_view kFuzzKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIGA/WIhSox+8cUgy+GDLKmbp/6w7iNDDJ1BcsLSZfRIk\n"
    "-----END PRIVATE KEY-----\n";

const affinity::acl::SigningKey& Key() {
  static const affinity::acl::SigningKey key = affinity::acl::SigningKey::FromPem(kFuzzKeyPem, "fuzz key").value();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace acl = affinity::acl;
  std::string_view token(reinterpret_cast<const char*>(data), size);
  acl::VerifyOptions options;
  options.key = &Key().verifying_key();
  options.issuer = "fuzz-issuer";
  options.now = 1'800'000'100;
  acl::GrantVerdict verdict = acl::VerifyGrant(token, options);
  auto decoded = acl::DecodeGrant(token);
  if (const auto* claims = std::get_if<acl::GrantClaims>(&verdict)) {
    if (!decoded.ok() || !(decoded->claims == *claims)) __builtin_trap();
    auto again = acl::SignGrant(Key(), *claims);
    if (!again.ok()) __builtin_trap();
    auto re = acl::VerifyGrant(*again, options);
    if (!std::holds_alternative<acl::GrantClaims>(re) || !(std::get<acl::GrantClaims>(re) == *claims)) __builtin_trap();
  } else if (std::get<acl::GrantDenial>(verdict).reason.empty()) {
    __builtin_trap();  // every refusal says why
  }
  return 0;
}
