#include "acl/signing_key.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/digest.h"

namespace affinity::acl {
namespace {

constexpr size_t kEd25519SignatureSize = 64;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  return buf.data();
}

std::shared_ptr<EVP_PKEY> Shared(EVP_PKEY* key) { return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free); }

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot read key file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot create " + path);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return ErrnoStatus(err, "cannot write " + path);
  return Status::Ok();
}

std::string PemOf(EVP_PKEY* key, bool private_key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  int ok = private_key ? PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)
                       : PEM_write_bio_PUBKEY(bio, key);
  std::string pem;
  if (ok == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return pem;
}

// A PEM public (SPKI) or private (PKCS#8) key that must be Ed25519: the only
// place keys are parsed, so no other key type ever reaches a verifier.
Result<std::shared_ptr<EVP_PKEY>> ParseEd25519Pem(std::string_view pem, const std::string& what, bool private_key) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Internal("out of memory reading " + what);
  EVP_PKEY* key = private_key ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                              : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    return InvalidArgument(what + " is not a PEM " + (private_key ? "private" : "public") + " key: " + OpenSslError());
  }
  auto shared = Shared(key);
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    return InvalidArgument(what + " is not an Ed25519 key (grants are signed with Ed25519 only; make a pair with "
                                  "`affinityctl keygen`)");
  }
  return shared;
}

}  // namespace

void PkeyDeleter::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

VerifyingKey::VerifyingKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {
  std::array<uint8_t, 32> raw{};
  size_t len = raw.size();
  EVP_PKEY_get_raw_public_key(key_.get(), raw.data(), &len);
  key_id_ = ToHex(Sha256(std::span<const uint8_t>(raw.data(), len))).substr(0, 16);
}

Result<VerifyingKey> VerifyingKey::FromPem(std::string_view pem, const std::string& what) {
  auto key = ParseEd25519Pem(pem, what, /*private_key=*/false);
  if (!key.ok()) return key.status();
  return VerifyingKey(std::move(key).value());
}

Result<VerifyingKey> VerifyingKey::LoadPem(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return FromPem(*text, "grant verifying key " + path);
}

bool VerifyingKey::Verify(std::string_view message, std::string_view signature) const {
  if (signature.size() != kEd25519SignatureSize) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key_.get()) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

std::string VerifyingKey::ToPem() const { return PemOf(key_.get(), false); }

Result<SigningKey> SigningKey::Generate() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) return Internal("Ed25519 key generation failed: " + OpenSslError());
  auto shared = Shared(key);
  return SigningKey(shared, VerifyingKey(shared));
}

Result<SigningKey> SigningKey::FromPem(std::string_view pem, const std::string& what) {
  auto key = ParseEd25519Pem(pem, what, /*private_key=*/true);
  if (!key.ok()) return key.status();
  return SigningKey(*key, VerifyingKey(*key));
}

Result<SigningKey> SigningKey::LoadPem(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return FromPem(*text, "grant signing key " + path);
}

Status SigningKey::SavePem(const std::string& private_path, const std::string& public_path) const {
  std::string private_pem = PemOf(key_.get(), true);
  std::string public_pem = public_.ToPem();
  if (private_pem.empty() || public_pem.empty()) return Internal("cannot encode the key as PEM: " + OpenSslError());
  Status s = WriteFile(private_path, private_pem, 0600);
  if (!s.ok()) return s;
  return WriteFile(public_path, public_pem, 0644);
}

Result<std::string> SigningKey::Sign(std::string_view message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return Internal("out of memory signing a grant");
  std::string signature(kEd25519SignatureSize, '\0');
  size_t len = signature.size();
  bool ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_.get()) == 1 &&
            EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return Internal("Ed25519 signing failed: " + OpenSslError());
  signature.resize(len);
  return signature;
}

}  // namespace affinity::acl
