// Qcow2Image: where the guest bytes of a qcow2 image live in the image file.
//
// Reads the header (version 2 or 3) and the active L1 table at Open, L2
// tables on demand (cached). Every offset taken from the file is checked
// before use: cluster_bits 9..21, the L1 table sized for the virtual size and
// at most 32 MiB, tables cluster-aligned and inside the file. Images this
// reader cannot map faithfully are refused at Open: encryption, an external
// data file, extended L2 entries (subclusters), unknown incompatible features.
// Format: https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt
//
// Thread safety: none (the L2 cache is mutated by Lookup).
// Failure: kCorruption naming the field or table entry that is wrong;
// kFailedPrecondition ("not inspectable: ...") for a valid image with a
// feature this reader does not handle.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "profile/image_file.h"

namespace affinity::profile {

class Qcow2Image {
 public:
  // Whether `header` (at least 4 bytes) starts with the qcow2 magic.
  static bool HasMagic(const uint8_t* header, size_t len);
  static Result<Qcow2Image> Open(const ImageFile& file);

  struct Cluster {
    enum class Kind { kUnallocated, kZero, kData, kCompressed };
    Kind kind = Kind::kUnallocated;
    uint64_t host_offset = 0;       // kData: the cluster's first byte; kCompressed: the compressed bytes
    uint64_t compressed_bytes = 0;  // kCompressed: how many bytes to inflate (clipped to the file)
  };

  uint64_t virtual_size() const { return virtual_size_; }
  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits_; }
  bool has_backing_file() const { return !backing_file_.empty(); }
  const std::string& backing_file() const { return backing_file_; }

  // The cluster holding guest byte `guest_offset`. REQUIRES guest_offset < virtual_size().
  Result<Cluster> Lookup(const ImageFile& file, uint64_t guest_offset);
  // Inflates a kCompressed cluster into `out` (cluster_size() bytes).
  Status Decompress(const ImageFile& file, const Cluster& cluster, uint8_t* out) const;

 private:
  Qcow2Image() = default;
  Result<const std::vector<uint64_t>*> L2Table(const ImageFile& file, uint64_t offset);

  uint32_t cluster_bits_ = 16;
  uint32_t version_ = 3;
  uint64_t virtual_size_ = 0;
  uint8_t compression_type_ = 0;  // 0 zlib (deflate), 1 zstd
  std::string backing_file_;
  std::vector<uint64_t> l1_;  // L2 table offsets (0: unallocated), validated at Open
  std::unordered_map<uint64_t, std::vector<uint64_t>> l2_cache_;  // by table offset
};

}  // namespace affinity::profile
