// Digests used on the wire and in the cache.
//
// Wire: SHA-256 in an RFC 9530 `Content-Digest: sha-256=:<base64>:` header,
// computed by the storage host over the exact bytes of a response and checked
// by the fetcher before a byte is stored.
// Cache: XXH3-128 per chunk, stored in the chunk index, checked the first time
// a chunk written by an earlier run is read (protects against torn or rotted
// cache files, not against an attacker with write access to the cache dir).
//
// Thread safety: free functions are reentrant; a Sha256Hasher is one thread's.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity {

using Sha256Bytes = std::array<uint8_t, 32>;
using ChunkDigest = std::array<uint8_t, 16>;

class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::span<const uint8_t> data);
  void Update(std::string_view data) {
    Update(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }
  Sha256Bytes Final();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Sha256Bytes Sha256(std::span<const uint8_t> data);
inline Sha256Bytes Sha256(std::string_view data) {
  return Sha256(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

// "sha-256=:<base64>:" for use as a Content-Digest header value.
std::string ContentDigestValue(const Sha256Bytes& digest);

// Finds the sha-256 member of a Content-Digest header value (a structured
// field dictionary; other algorithms are skipped). kCorruption if the header
// is malformed, kNotFound if it has no sha-256 member.
Result<Sha256Bytes> ParseContentDigest(std::string_view header_value);

ChunkDigest ComputeChunkDigest(std::span<const uint8_t> data);

std::string ToHex(std::span<const uint8_t> bytes);

}  // namespace affinity
