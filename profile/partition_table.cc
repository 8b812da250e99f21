#include "profile/partition_table.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "profile/byte_order.h"

namespace affinity::profile {
namespace {

constexpr uint64_t kExtMagicOffset = 1024 + 56;
constexpr uint16_t kExtMagic = 0xEF53;
constexpr uint32_t kMaxGptEntries = 16384;
constexpr uint32_t kMaxGptEntryBytes = 4096;

// Whether the ext superblock magic is at `offset`; a read failure counts as no.
bool HoldsExt(const GuestReader& read, uint64_t offset, uint64_t size) {
  if (size < 2048) return false;
  uint8_t m[2];
  if (!read(offset + kExtMagicOffset, m, 2).ok()) return false;
  return LoadLe<uint16_t>(m) == kExtMagic;
}

std::string Candidate(const std::string& what, const GuestReader& read, uint64_t offset, uint64_t size) {
  return what + " holds no ext2/3/4 file system (" + DescribeContent(read, offset, size) + ")";
}

// The GPT partition holding ext, or the reasons none does; sector size 512 or 4096.
Result<GuestPartition> FromGpt(const GuestReader& read, uint64_t disk_size, uint64_t sector, std::string* found) {
  if (disk_size < 2 * sector) return Corruption("gpt: the disk is smaller than two sectors");
  std::vector<uint8_t> h(sector);
  if (Status s = read(sector, h.data(), h.size()); !s.ok()) return s;
  if (std::memcmp(h.data(), "EFI PART", 8) != 0) return Corruption("gpt: no \"EFI PART\" signature at LBA 1");
  const uint32_t header_size = LoadLe<uint32_t>(h.data() + 12);
  if (header_size < 92 || header_size > sector) {
    return Corruption("gpt: header_size " + std::to_string(header_size) + " outside 92.." + std::to_string(sector));
  }
  const uint32_t header_crc = LoadLe<uint32_t>(h.data() + 16);
  std::memset(h.data() + 16, 0, 4);
  if (crc32(0, h.data(), header_size) != header_crc) return Corruption("gpt: header CRC32 mismatch");
  const uint64_t entries_lba = LoadLe<uint64_t>(h.data() + 72);
  const uint32_t count = LoadLe<uint32_t>(h.data() + 80);
  const uint32_t entry_size = LoadLe<uint32_t>(h.data() + 84);
  const uint32_t entries_crc = LoadLe<uint32_t>(h.data() + 88);
  if (count == 0 || count > kMaxGptEntries) {
    return Corruption("gpt: num_partition_entries " + std::to_string(count) + " outside 1.." +
                      std::to_string(kMaxGptEntries));
  }
  if (entry_size < 128 || entry_size > kMaxGptEntryBytes || entry_size % 8 != 0) {
    return Corruption("gpt: partition entry size " + std::to_string(entry_size) + " is not 128..4096, a multiple of 8");
  }
  const uint64_t table_bytes = uint64_t{count} * entry_size;
  if (entries_lba < 2 || entries_lba > disk_size / sector || table_bytes > disk_size - entries_lba * sector) {
    return Corruption("gpt: the partition entries at LBA " + std::to_string(entries_lba) + " are outside the disk");
  }
  std::vector<uint8_t> table(table_bytes);
  if (Status s = read(entries_lba * sector, table.data(), table.size()); !s.ok()) return s;
  if (crc32(0, table.data(), static_cast<uInt>(table.size())) != entries_crc) {
    return Corruption("gpt: partition entries CRC32 mismatch");
  }
  static constexpr uint8_t kUnused[16] = {};
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = table.data() + uint64_t{i} * entry_size;
    if (std::memcmp(e, kUnused, 16) == 0) continue;
    const uint64_t first = LoadLe<uint64_t>(e + 32), last = LoadLe<uint64_t>(e + 40);
    const std::string name = "gpt partition " + std::to_string(i + 1);
    if (first == 0 || last < first || last >= disk_size / sector) {
      *found += "; " + name + " (LBA " + std::to_string(first) + ".." + std::to_string(last) + ") is outside the disk";
      continue;
    }
    const uint64_t offset = first * sector, size = (last - first + 1) * sector;
    if (HoldsExt(read, offset, size)) return GuestPartition{"gpt:" + std::to_string(i + 1), offset, size};
    *found += "; " + Candidate(name, read, offset, size);
  }
  return FailedPrecondition("no gpt partition holds ext");
}

}  // namespace

std::string DescribeContent(const GuestReader& read, uint64_t offset, uint64_t size) {
  uint8_t b[4096] = {};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, sizeof b));
  if (n == 0) return "empty";
  if (!read(offset, b, n).ok()) return "unreadable";
  if (n >= 4 && std::memcmp(b, "XFSB", 4) == 0) return "XFS";
  if (n >= 6 && std::memcmp(b, "LUKS\xba\xbe", 6) == 0) return "LUKS";
  if (n >= 90 && (std::memcmp(b + 54, "FAT", 3) == 0 || std::memcmp(b + 82, "FAT32", 5) == 0)) return "vfat";
  if (n >= 4096 && (std::memcmp(b + 4086, "SWAPSPACE2", 10) == 0)) return "swap";
  if (uint8_t m[8]; size >= 0x10048 && read(offset + 0x10040, m, 8).ok() && std::memcmp(m, "_BHRfS_M", 8) == 0) {
    return "btrfs";
  }
  if (std::all_of(b, b + n, [](uint8_t c) { return c == 0; })) {
    return "all zeros in the first " + std::to_string(n) + " bytes";
  }
  uint8_t m[2] = {};
  (void)read(offset + kExtMagicOffset, m, 2);
  char hex[96];
  std::snprintf(hex, sizeof hex, "unknown: first bytes %02x%02x%02x%02x%02x%02x%02x%02x, magic at 1080 0x%04x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], LoadLe<uint16_t>(m));
  return hex;
}

Result<GuestPartition> FindExtPartition(const GuestReader& read, uint64_t disk_size) {
  if (disk_size < 512) return FailedPrecondition("not inspectable: the disk has " + std::to_string(disk_size) + " bytes");
  uint8_t mbr[512];
  if (Status s = read(0, mbr, sizeof mbr); !s.ok()) return s;
  std::string found;  // "; what candidate held" for the error message
  if (mbr[510] == 0x55 && mbr[511] == 0xAA) {
    bool protective = false;
    for (int i = 0; i < 4; ++i) protective |= mbr[446 + i * 16 + 4] == 0xEE;
    if (protective) {
      // 512-byte sectors first; a disk formatted with 4 KiB sectors has its header at 4096.
      auto gpt = FromGpt(read, disk_size, 512, &found);
      if (!gpt.ok() && gpt.status().code() == StatusCode::kCorruption && disk_size >= 8192) {
        std::string found4k;
        if (auto g4 = FromGpt(read, disk_size, 4096, &found4k); g4.ok() || g4.status().code() != StatusCode::kCorruption) {
          gpt = std::move(g4);
          found = found4k;
        }
      }
      if (gpt.ok()) return gpt;
      if (gpt.status().code() != StatusCode::kFailedPrecondition) return gpt.status();
      return FailedPrecondition("not inspectable: " + (found.empty() ? std::string("; gpt has no partitions") : found).substr(2));
    }
    bool sane = false;
    for (int i = 0; i < 4; ++i) {
      const uint8_t* e = mbr + 446 + i * 16;
      const uint8_t type = e[4];
      const uint64_t start = LoadLe<uint32_t>(e + 8), sectors = LoadLe<uint32_t>(e + 12);
      if (type == 0 || sectors == 0) continue;
      const std::string name = "mbr partition " + std::to_string(i + 1);
      if (type == 0x05 || type == 0x0F || type == 0x85) {
        found += "; " + name + " is extended (logical partitions are not read)";
        sane = true;
        continue;
      }
      if (start == 0 || (start + sectors) * 512 > disk_size) {
        found += "; " + name + " (sectors " + std::to_string(start) + "+" + std::to_string(sectors) +
                 ") is outside the disk";
        continue;
      }
      sane = true;
      if (HoldsExt(read, start * 512, sectors * 512)) {
        return GuestPartition{"mbr:" + std::to_string(i + 1), start * 512, sectors * 512};
      }
      char type_hex[8];
      std::snprintf(type_hex, sizeof type_hex, "0x%02x", type);
      found += "; " + Candidate(name + " (type " + type_hex + ")", read, start * 512, sectors * 512);
    }
    // A boot sector with 0x55AA but no sane entries (vfat, a boot loader) is not a partition table.
    if (sane && !HoldsExt(read, 0, disk_size)) return FailedPrecondition("not inspectable: " + found.substr(2));
  }
  if (HoldsExt(read, 0, disk_size)) return GuestPartition{"whole-disk", 0, disk_size};
  return FailedPrecondition("not inspectable: " + Candidate("the disk has no partition table and", read, 0, disk_size) +
                            found);
}

}  // namespace affinity::profile
