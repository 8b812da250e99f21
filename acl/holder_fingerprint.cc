#include "acl/holder_fingerprint.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

#include "common/digest.h"

namespace affinity::acl {

std::string HolderFingerprint(X509* certificate) {
  if (certificate == nullptr) return {};
  EVP_PKEY* key = X509_get0_pubkey(certificate);
  if (key == nullptr) return {};
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return {};
  std::string fingerprint = ToHex(Sha256(std::span<const uint8_t>(der, static_cast<size_t>(n))));
  OPENSSL_free(der);
  return fingerprint;
}

Result<std::string> HolderFingerprintOfFile(const std::string& pem_path) {
  FILE* f = std::fopen(pem_path.c_str(), "r");
  if (f == nullptr) return ErrnoStatus(errno, "cannot read certificate " + pem_path);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) return InvalidArgument(pem_path + " holds no PEM certificate");
  std::string fingerprint = HolderFingerprint(cert);
  X509_free(cert);
  if (fingerprint.empty()) return InvalidArgument("certificate " + pem_path + " has no readable public key");
  return fingerprint;
}

bool IsFingerprint(std::string_view text) {
  if (text.size() != kFingerprintHexLength) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace affinity::acl
