// The holder fingerprint a grant is bound to: SHA-256 over the DER
// SubjectPublicKeyInfo of the holder's TLS client certificate, as 64
// lowercase hex digits (the same value as
// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`).
//
// Binding to the public key, not to the whole certificate, lets a host renew
// its certificate with the same key without invalidating its grants; a
// stolen token is useless without that private key, because the storage host
// compares the grant's holder with the key the TLS peer proved it holds.
//
// Thread safety: pure functions.
// Failure: kInvalidArgument naming the file that holds no usable certificate.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

typedef struct x509_st X509;

namespace affinity::acl {

inline constexpr size_t kFingerprintHexLength = 64;

// Empty if the certificate carries no readable public key.
std::string HolderFingerprint(X509* certificate);
Result<std::string> HolderFingerprintOfFile(const std::string& pem_path);
// 64 lowercase hex digits.
bool IsFingerprint(std::string_view text);

}  // namespace affinity::acl
