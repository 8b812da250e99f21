// The bytes of a GuestFileMap, as the storage host caches an inspection
// (docs/guest-inspection.md, "Cached maps"):
//
//   zstd( CBOR {"format": "affinity-guest-file-map", "version": 1,
//               "container": "raw"|"qcow2", "partition": "whole-disk"|"mbr:N"|"gpt:N",
//               "filesystem": "ext2"|"ext3"|"ext4", "image_size": u64, "block_size": u32,
//               "files": [[path, kind, size, link_target, inode_offset, inode_length,
//                          [offset, length, offset, length, ...]], ...]} )
//
// Paths and link targets are CBOR byte strings: guest names need not be
// UTF-8. Files are in strictly increasing path order.
//
// Thread safety: pure functions.
// Failure: DecodeGuestFileMap takes bytes from a cache that may be damaged
// or stale; anything malformed, oversized or inconsistent (an extent past
// image_size, paths out of order) is kCorruption naming the field.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "profile/guest_files.h"

namespace affinity::profile {

inline constexpr const char* kGuestFileMapFormat = "affinity-guest-file-map";
inline constexpr int kGuestFileMapVersion = 1;
inline constexpr size_t kMaxEncodedGuestFileMapBytes = 256 << 20;
inline constexpr size_t kMaxDecodedGuestFileMapBytes = 1024 << 20;

std::string EncodeGuestFileMap(const GuestFileMap& map);
Result<GuestFileMap> DecodeGuestFileMap(std::string_view bytes);

}  // namespace affinity::profile
