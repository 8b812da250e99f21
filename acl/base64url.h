// Base64url without padding (RFC 4648 §5), as JWS compact serialization
// uses it (RFC 7515 §2). The bit work is OpenSSL's EVP_EncodeBlock /
// EVP_DecodeBlock; this file only swaps the alphabet and insists on the
// canonical form, so one token has exactly one spelling.
//
// Thread safety: pure functions.
// Failure: Base64UrlDecode returns nullopt for any character outside the
// url-safe alphabet, '=' padding, a length of 1 mod 4, or non-zero spare bits.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace affinity::acl {

std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace affinity::acl
