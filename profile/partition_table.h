// Choosing the part of a guest disk the inspector reads: the whole disk, a
// primary MBR partition or a GPT partition, whichever first holds an
// ext2/3/4 file system (superblock magic 0xEF53 at byte 1080).
//
//   1. MBR signature 0x55AA at 510 with a protective entry (0xEE) -> GPT:
//      header at LBA 1 (512-byte sectors, then 4096), signature, header size,
//      entry size and count bounded, header and entry CRC32 checked (zlib);
//      the first entry in table order holding ext wins.
//   2. Otherwise an MBR with sane primary entries (inside the disk, not
//      extended): the first one in table order holding ext wins.
//      Logical partitions inside an extended one are not read.
//   3. Otherwise the whole disk, if it holds ext.
// If nothing holds ext, the error says what was found, per candidate
// ("gpt partition 1 holds no ext2/3/4 file system (XFS)").
//
// Thread safety: pure functions of the reader.
// Failure: kFailedPrecondition "not inspectable: ..." when no ext file system
// is found; kCorruption for a GPT whose header or table is malformed; the
// reader's status when a read fails.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace affinity::profile {

struct GuestPartition {
  std::string name;     // "whole-disk" | "mbr:N" | "gpt:N" (1-based)
  uint64_t offset = 0;  // bytes from the start of the guest disk
  uint64_t size = 0;    // bytes
};

// Reads guest disk bytes [offset, offset + len); never past `disk_size`.
using GuestReader = std::function<Status(uint64_t offset, void* buf, size_t len)>;

Result<GuestPartition> FindExtPartition(const GuestReader& read, uint64_t disk_size);

// What the bytes at `offset` look like, for error messages: "XFS", "vfat",
// "btrfs", "LUKS", "swap", "all zeros" or "unknown (first bytes 0x...)".
std::string DescribeContent(const GuestReader& read, uint64_t offset, uint64_t size);

}  // namespace affinity::profile
