// The grant-signing key pair: Ed25519 (RFC 8032) through OpenSSL's EVP API.
//
// The storage host holds the private SigningKey (--grant-key) and signs every
// grant it issues; whoever checks a grant holds the public VerifyingKey. Keys
// are PEM files: PKCS#8 private key, SubjectPublicKeyInfo public key (what
// `openssl genpkey -algorithm ed25519` and `affinityctl keygen` write).
//
// Only Ed25519 keys load: an RSA, EC or HMAC key of the same file name is
// refused at load time, so a token can never be checked with a key of
// another type (no algorithm/key confusion).
//
// Key id ("kid" in the token header): the first 16 hex digits of SHA-256
// over the raw 32-byte public key. It names the key; it proves nothing.
//
// Thread safety: const methods from any thread (EVP_PKEY is reference
// counted and immutable once loaded).
// Failure: kInvalidArgument naming the file and what is wrong with it;
// kIoError when a file cannot be read or written.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace affinity::acl {

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

class VerifyingKey {
 public:
  static Result<VerifyingKey> LoadPem(const std::string& path);
  static Result<VerifyingKey> FromPem(std::string_view pem, const std::string& what);

  const std::string& key_id() const { return key_id_; }
  // True when `signature` is a valid Ed25519 signature of `message`.
  bool Verify(std::string_view message, std::string_view signature) const;
  std::string ToPem() const;

 private:
  friend class SigningKey;
  explicit VerifyingKey(std::shared_ptr<EVP_PKEY> key);
  std::shared_ptr<EVP_PKEY> key_;
  std::string key_id_;
};

class SigningKey {
 public:
  static Result<SigningKey> Generate();
  static Result<SigningKey> LoadPem(const std::string& path);
  static Result<SigningKey> FromPem(std::string_view pem, const std::string& what);

  // Writes the private key (mode 0600, refusing to overwrite) and the public key.
  Status SavePem(const std::string& private_path, const std::string& public_path) const;

  const VerifyingKey& verifying_key() const { return public_; }
  const std::string& key_id() const { return public_.key_id(); }
  Result<std::string> Sign(std::string_view message) const;

 private:
  SigningKey(std::shared_ptr<EVP_PKEY> key, VerifyingKey pub) : key_(std::move(key)), public_(std::move(pub)) {}
  std::shared_ptr<EVP_PKEY> key_;
  VerifyingKey public_;
};

}  // namespace affinity::acl
