#include "common/digest.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <cstring>

namespace affinity {

struct Sha256Hasher::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256Hasher::Sha256Hasher() : impl_(std::make_unique<Impl>()) {
  // Only fails on allocation failure; a null ctx then makes Update a no-op
  // and Final return zeros, which never matches a real digest.
  if (impl_->ctx != nullptr) EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::Update(std::span<const uint8_t> data) {
  if (impl_->ctx != nullptr && !data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

Sha256Bytes Sha256Hasher::Final() {
  Sha256Bytes out{};
  unsigned int len = 0;
  if (impl_->ctx != nullptr) EVP_DigestFinal_ex(impl_->ctx, out.data(), &len);
  return out;
}

Sha256Bytes Sha256(std::span<const uint8_t> data) {
  Sha256Bytes out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::string ContentDigestValue(const Sha256Bytes& digest) {
  unsigned char b64[64] = {};
  int n = EVP_EncodeBlock(b64, digest.data(), static_cast<int>(digest.size()));
  std::string v = "sha-256=:";
  v.append(reinterpret_cast<const char*>(b64), static_cast<size_t>(n));
  v += ':';
  return v;
}

namespace {
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

Result<Sha256Bytes> ParseContentDigest(std::string_view header_value) {
  while (!header_value.empty()) {
    size_t comma = header_value.find(',');
    std::string_view member = Trim(header_value.substr(0, comma));
    header_value = comma == std::string_view::npos ? std::string_view{} : header_value.substr(comma + 1);
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) return Corruption("Content-Digest member without '='");
    if (Trim(member.substr(0, eq)) != "sha-256") continue;
    std::string_view value = Trim(member.substr(eq + 1));
    // A byte sequence: ':' base64 ':' (RFC 8941 §3.3.5); parameters after ';' are ignored.
    value = value.substr(0, value.find(';'));
    if (value.size() < 2 || value.front() != ':' || value.back() != ':') {
      return Corruption("Content-Digest sha-256 value is not a byte sequence");
    }
    value = value.substr(1, value.size() - 2);
    if (value.size() != 44) return Corruption("Content-Digest sha-256 value has the wrong length");
    unsigned char raw[48] = {};
    int n = EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(value.data()), static_cast<int>(value.size()));
    // 44 base64 chars with one '=' pad decode to 33 bytes, the last being padding.
    if (n != 33 || value[43] != '=' || value[42] == '=') return Corruption("Content-Digest sha-256 value is not valid base64");
    Sha256Bytes out{};
    std::memcpy(out.data(), raw, out.size());
    return out;
  }
  return NotFound("Content-Digest has no sha-256 member");
}

ChunkDigest ComputeChunkDigest(std::span<const uint8_t> data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  ChunkDigest out{};
  std::memcpy(out.data(), c.digest, out.size());
  return out;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace affinity
