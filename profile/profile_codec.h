// The profile's wire and file format (docs/profile.md, "Format"):
//
//   CBOR {"format": "affinity-profile", "version": 1,
//         "sha256": <32 bytes: SHA-256 of the zstd bytes>, "zstd": <bytes>}
//
// The zstd frame holds a CBOR document with one column per field (block
// numbers delta-coded, probabilities in 1/10000), which compresses well.
// Probabilities therefore round-trip to 1e-4. The digest catches a profile
// damaged at rest or in an export file; on the wire it travels over mutual
// TLS from the storage host.
//
// Thread safety: pure functions.
// Failure: DecodeProfile reads what an operator or a peer may hand it; any
// malformed, oversized or inconsistent input is kInvalidArgument (or
// kCorruption for a digest mismatch) with a message naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "profile/profile.h"

namespace affinity::profile {

inline constexpr size_t kMaxEncodedProfileBytes = 16 << 20;
inline constexpr size_t kMaxDecodedProfileBytes = 64 << 20;
inline constexpr const char* kProfileMediaType = "application/vnd.affinity.profile";

std::string EncodeProfile(const Profile& profile);
Result<Profile> DecodeProfile(std::string_view bytes);
// The envelope around a CBOR document (EncodeProfile's last step; the fuzz
// target uses it to reach the document parser behind the digest).
std::string SealProfileDocument(std::string_view cbor);

// The bytes of a profile file (affinityfs --profile, affinityctl profile
// show/import), read only up to kMaxEncodedProfileBytes: kNotFound /
// kIoError naming the file, kInvalidArgument when it is bigger.
Result<std::string> ReadProfileFile(const std::string& path);

// The first 16 hex digits of the SHA-256 of the encoded profile: what the
// destination shows as user.affinity.profile_version.
std::string ProfileId(std::string_view encoded);

}  // namespace affinity::profile
