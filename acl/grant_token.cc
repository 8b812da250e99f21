#include "acl/grant_token.h"

#include <nlohmann/json.hpp>

#include "acl/base64url.h"

namespace affinity::acl {
namespace {

using nlohmann::json;

constexpr std::string_view kAlgorithm = "EdDSA";

struct TokenParts {
  std::string_view header_b64, payload_b64, signature_b64;
  std::string_view signing_input;  // header_b64 "." payload_b64
};

std::optional<TokenParts> Split(std::string_view token) {
  size_t first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) return std::nullopt;
  TokenParts p;
  p.header_b64 = token.substr(0, first);
  p.payload_b64 = token.substr(first + 1, second - first - 1);
  p.signature_b64 = token.substr(second + 1);
  p.signing_input = token.substr(0, second);
  if (p.header_b64.empty() || p.payload_b64.empty() || p.signature_b64.empty()) return std::nullopt;
  return p;
}

GrantDenial Deny(GrantRefusal r, std::string reason) { return GrantDenial{r, std::move(reason)}; }

}  // namespace

Result<std::string> SignGrant(const SigningKey& key, const GrantClaims& claims) {
  json header = {{"alg", kAlgorithm}, {"typ", "JWT"}, {"kid", key.key_id()}};
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(ClaimsToJson(claims));
  auto signature = key.Sign(input);
  if (!signature.ok()) return signature.status();
  std::string token = input + "." + Base64UrlEncode(*signature);
  if (token.size() > kMaxTokenBytes) {
    return InvalidArgument("the grant would be " + std::to_string(token.size()) + " bytes, over the limit of " +
                           std::to_string(kMaxTokenBytes) + " (name fewer images)");
  }
  return token;
}

GrantVerdict VerifyGrant(std::string_view token, const VerifyOptions& options) {
  if (token.empty()) return Deny(GrantRefusal::kMissing, "the grant is empty");
  if (token.size() > kMaxTokenBytes) {
    return Deny(GrantRefusal::kOversized, "the grant is " + std::to_string(token.size()) +
                                              " bytes; at most " + std::to_string(kMaxTokenBytes) + " are accepted");
  }
  auto parts = Split(token);
  if (!parts) return Deny(GrantRefusal::kMalformed, "the grant is not three non-empty '.'-separated parts");
  auto header_text = Base64UrlDecode(parts->header_b64);
  if (!header_text) return Deny(GrantRefusal::kMalformed, "the grant header is not base64url");
  json header = json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Deny(GrantRefusal::kMalformed, "the grant header is not a JSON object");
  }
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != kAlgorithm) {
    std::string named = alg != header.end() && alg->is_string() ? alg->get<std::string>() : "(none)";
    return Deny(GrantRefusal::kBadAlgorithm, "the grant's algorithm is '" + named + "'; only EdDSA is accepted");
  }
  if (header.contains("crit")) {
    return Deny(GrantRefusal::kBadAlgorithm, "the grant header has 'crit' extensions, which are not supported");
  }
  if (auto typ = header.find("typ"); typ != header.end() && !(typ->is_string() && typ->get<std::string>() == "JWT")) {
    return Deny(GrantRefusal::kMalformed, "the grant header's 'typ' is not JWT");
  }
  auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string()) return Deny(GrantRefusal::kMalformed, "the grant header has no 'kid'");
  if (options.key == nullptr || kid->get<std::string>() != options.key->key_id()) {
    return Deny(GrantRefusal::kUnknownKey, "the grant was signed by key '" + kid->get<std::string>().substr(0, 64) +
                                               "', which this host does not trust");
  }
  auto signature = Base64UrlDecode(parts->signature_b64);
  if (!signature) return Deny(GrantRefusal::kMalformed, "the grant signature is not base64url");
  if (!options.key->Verify(parts->signing_input, *signature)) {
    return Deny(GrantRefusal::kBadSignature, "the grant's signature does not verify");
  }
  auto payload = Base64UrlDecode(parts->payload_b64);
  if (!payload) return Deny(GrantRefusal::kMalformed, "the grant payload is not base64url");
  auto claims = ClaimsFromJson(*payload);
  if (!claims.ok()) return Deny(GrantRefusal::kMalformed, claims.status().message());
  if (claims->issuer != options.issuer) {
    return Deny(GrantRefusal::kWrongIssuer, "the grant was issued by '" + claims->issuer + "', not '" +
                                                options.issuer + "'");
  }
  if (options.now + options.clock_skew < claims->not_before) {
    return Deny(GrantRefusal::kNotYetValid, "the grant is valid from " + std::to_string(claims->not_before) +
                                                "; it is now " + std::to_string(options.now));
  }
  if (options.now >= claims->expires + options.clock_skew) {
    return Deny(GrantRefusal::kExpired, "the grant expired at " + std::to_string(claims->expires) + "; it is now " +
                                            std::to_string(options.now));
  }
  return std::move(*claims);
}

Result<DecodedGrant> DecodeGrant(std::string_view token) {
  if (token.size() > kMaxTokenBytes) return InvalidArgument("the grant is longer than " + std::to_string(kMaxTokenBytes) + " bytes");
  auto parts = Split(token);
  if (!parts) return InvalidArgument("the grant is not three non-empty '.'-separated parts");
  auto header = Base64UrlDecode(parts->header_b64);
  if (!header) return InvalidArgument("the grant header is not base64url");
  auto payload = Base64UrlDecode(parts->payload_b64);
  if (!payload) return InvalidArgument("the grant payload is not base64url");
  auto claims = ClaimsFromJson(*payload);
  if (!claims.ok()) return claims.status();
  return DecodedGrant{*header, std::move(*claims)};
}

}  // namespace affinity::acl
