#include "profile/qcow2_image.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <memory>

#include "profile/byte_order.h"

namespace affinity::profile {
namespace {

constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ULL;  // bits 9..55 of L1/L2 entries
constexpr uint64_t kCompressedFlag = 1ULL << 62;
constexpr uint64_t kZeroFlag = 1ULL;  // L2 bit 0 (version 3)
constexpr uint64_t kMaxL1Bytes = 32ULL << 20;  // qemu's QCOW_MAX_L1_SIZE
// Bounds the L2 cache: 64 MiB covers a 4 TiB image at 64 KiB clusters.
constexpr uint64_t kMaxL2CacheBytes = 64ULL << 20;

enum IncompatibleBit : uint64_t {
  kDirty = 1ULL << 0,
  kCorrupt = 1ULL << 1,
  kExternalData = 1ULL << 2,
  kCompressionType = 1ULL << 3,
  kExtendedL2 = 1ULL << 4,
};

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Status NotInspectable(const std::string& why) { return FailedPrecondition("not inspectable: qcow2 " + why); }

}  // namespace

bool Qcow2Image::HasMagic(const uint8_t* header, size_t len) {
  return len >= 4 && std::memcmp(header, "QFI\xfb", 4) == 0;
}

Result<Qcow2Image> Qcow2Image::Open(const ImageFile& file) {
  uint8_t h[112] = {};
  const size_t have = static_cast<size_t>(std::min<uint64_t>(file.size(), sizeof h));
  if (have < 72) return Corruption("qcow2 header truncated: the file has " + std::to_string(file.size()) + " bytes");
  if (Status s = file.ReadExact(0, h, have); !s.ok()) return s;
  if (!HasMagic(h, have)) return Corruption("qcow2: bad magic");

  Qcow2Image q;
  q.version_ = LoadBe<uint32_t>(h + 4);
  if (q.version_ != 2 && q.version_ != 3) return NotInspectable("version " + std::to_string(q.version_));
  const uint64_t backing_offset = LoadBe<uint64_t>(h + 8);
  const uint32_t backing_size = LoadBe<uint32_t>(h + 16);
  q.cluster_bits_ = LoadBe<uint32_t>(h + 20);
  q.virtual_size_ = LoadBe<uint64_t>(h + 24);
  const uint32_t crypt_method = LoadBe<uint32_t>(h + 32);
  const uint32_t l1_size = LoadBe<uint32_t>(h + 36);
  const uint64_t l1_offset = LoadBe<uint64_t>(h + 40);

  if (q.cluster_bits_ < 9 || q.cluster_bits_ > 21) {
    return Corruption("qcow2: cluster_bits " + std::to_string(q.cluster_bits_) + " outside 9..21");
  }
  const uint64_t cs = q.cluster_size();
  if (crypt_method != 0) return NotInspectable("image is encrypted (crypt_method " + std::to_string(crypt_method) + ")");

  if (q.version_ == 3) {
    if (have < 104) return Corruption("qcow2: version 3 header truncated");
    const uint64_t incompatible = LoadBe<uint64_t>(h + 72);
    const uint32_t header_length = LoadBe<uint32_t>(h + 100);
    if (header_length < 104 || header_length > cs) {
      return Corruption("qcow2: header_length " + std::to_string(header_length) + " outside 104..cluster size");
    }
    if (incompatible & kCorrupt) return Corruption("qcow2: the image is marked corrupt (incompatible feature bit 1)");
    if (incompatible & kExternalData) return NotInspectable("image keeps its data in an external data file");
    if (incompatible & kExtendedL2) return NotInspectable("image uses extended L2 entries (subclusters)");
    const uint64_t unknown = incompatible & ~(kDirty | kCorrupt | kExternalData | kCompressionType | kExtendedL2);
    if (unknown != 0) return NotInspectable("image has unknown incompatible features " + Hex(unknown));
    if (incompatible & kCompressionType) {
      if (header_length <= 104 || have <= 104) return Corruption("qcow2: compression type bit set without the field");
      q.compression_type_ = h[104];
      if (q.compression_type_ > 1) {
        return NotInspectable("compression type " + std::to_string(q.compression_type_) + " is unknown");
      }
    }
  }

  if (backing_offset != 0) {
    if (backing_size == 0 || backing_size > 1023 || backing_offset > file.size() ||
        backing_size > file.size() - backing_offset) {
      return Corruption("qcow2: backing file name at " + std::to_string(backing_offset) + " (+" +
                        std::to_string(backing_size) + ") is outside the file or over 1023 bytes");
    }
    q.backing_file_.resize(backing_size);
    if (Status s = file.ReadExact(backing_offset, q.backing_file_.data(), backing_size); !s.ok()) return s;
  }

  // One L1 entry covers cs/8 L2 entries of cs bytes each.
  const uint64_t span = cs * (cs / 8);
  const uint64_t needed = q.virtual_size_ / span + (q.virtual_size_ % span != 0);
  if (uint64_t{l1_size} < needed) {
    return Corruption("qcow2: l1_size " + std::to_string(l1_size) + " is too small for the virtual size " +
                      std::to_string(q.virtual_size_) + " (needs " + std::to_string(needed) + ")");
  }
  if (uint64_t{l1_size} * 8 > kMaxL1Bytes) {
    return Corruption("qcow2: l1_size " + std::to_string(l1_size) + " is over the 32 MiB limit");
  }
  if (l1_offset % cs != 0 || l1_offset > file.size() || uint64_t{l1_size} * 8 > file.size() - l1_offset) {
    return Corruption("qcow2: the L1 table at " + std::to_string(l1_offset) + " (" + std::to_string(l1_size) +
                      " entries) is not cluster-aligned or not inside the file of " + std::to_string(file.size()) +
                      " bytes");
  }
  // Only the entries covering the virtual size are ever used.
  std::vector<uint8_t> raw(needed * 8);
  if (Status s = file.ReadExact(l1_offset, raw.data(), raw.size()); !s.ok()) return s;
  q.l1_.resize(needed);
  for (uint64_t i = 0; i < needed; ++i) {
    const uint64_t l2 = LoadBe<uint64_t>(raw.data() + i * 8) & kOffsetMask;
    if (l2 != 0 && (l2 % cs != 0 || l2 > file.size() || cs > file.size() - l2)) {
      return Corruption("qcow2: L1 entry " + std::to_string(i) + ": L2 table offset " + std::to_string(l2) +
                        " is not cluster-aligned or not inside the file");
    }
    q.l1_[i] = l2;
  }
  return q;
}

Result<const std::vector<uint64_t>*> Qcow2Image::L2Table(const ImageFile& file, uint64_t offset) {
  if (auto it = l2_cache_.find(offset); it != l2_cache_.end()) return &it->second;
  const uint64_t cs = cluster_size();
  if ((l2_cache_.size() + 1) * cs > kMaxL2CacheBytes) l2_cache_.clear();
  std::vector<uint8_t> raw(cs);
  if (Status s = file.ReadExact(offset, raw.data(), raw.size()); !s.ok()) return s;
  std::vector<uint64_t> table(cs / 8);
  for (size_t i = 0; i < table.size(); ++i) table[i] = LoadBe<uint64_t>(raw.data() + i * 8);
  return &(l2_cache_[offset] = std::move(table));
}

Result<Qcow2Image::Cluster> Qcow2Image::Lookup(const ImageFile& file, uint64_t guest_offset) {
  const uint64_t cs = cluster_size();
  const uint64_t index = guest_offset >> cluster_bits_;
  const uint64_t l1_index = index / (cs / 8);
  if (guest_offset >= virtual_size_ || l1_index >= l1_.size()) {
    return OutOfRange("qcow2: guest offset " + std::to_string(guest_offset) + " beyond the virtual size");
  }
  Cluster c;
  if (l1_[l1_index] == 0) return c;
  auto table = L2Table(file, l1_[l1_index]);
  if (!table.ok()) return table.status();
  const uint64_t entry = (**table)[index % (cs / 8)];
  if (entry & kCompressedFlag) {
    // Bits 0..x-1: host offset; x..61: additional 512-byte sectors (qcow2.txt).
    const uint32_t x = 62 - (cluster_bits_ - 8);
    const uint64_t host = entry & ((uint64_t{1} << x) - 1);
    const uint64_t sectors = ((entry >> x) & ((uint64_t{1} << (cluster_bits_ - 8)) - 1)) + 1;
    if (host == 0 || host >= file.size()) {
      return Corruption("qcow2: compressed cluster for guest offset " + std::to_string(guest_offset) + " at " +
                        std::to_string(host) + " is outside the file");
    }
    c.kind = Cluster::Kind::kCompressed;
    c.host_offset = host;
    // The last compressed cluster may end before its last sector does.
    c.compressed_bytes = std::min(sectors * 512 - (host & 511), file.size() - host);
    return c;
  }
  const uint64_t host = entry & kOffsetMask;
  if (version_ >= 3 && (entry & kZeroFlag)) {
    c.kind = Cluster::Kind::kZero;
    return c;
  }
  if (host == 0) return c;
  if (host % cs != 0) {
    return Corruption("qcow2: data cluster for guest offset " + std::to_string(guest_offset) + " at " +
                      std::to_string(host) + " is not cluster-aligned");
  }
  c.kind = Cluster::Kind::kData;
  c.host_offset = host;
  return c;
}

Status Qcow2Image::Decompress(const ImageFile& file, const Cluster& cluster, uint8_t* out) const {
  const uint64_t cs = cluster_size();
  if (cluster.compressed_bytes > 2 * cs) return Corruption("qcow2: compressed cluster over twice the cluster size");
  std::vector<uint8_t> in(cluster.compressed_bytes);
  if (Status s = file.ReadExact(cluster.host_offset, in.data(), in.size()); !s.ok()) return s;
  const std::string where = "qcow2: compressed cluster at " + std::to_string(cluster.host_offset);
  if (compression_type_ == 1) {
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!ctx) return Internal("zstd: out of memory");
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    ZSTD_outBuffer dst{out, cs, 0};
    while (dst.pos < dst.size) {
      const size_t r = ZSTD_decompressStream(ctx.get(), &dst, &src);
      if (ZSTD_isError(r)) return Corruption(where + " does not decompress (zstd: " + ZSTD_getErrorName(r) + ")");
      if (r == 0 && dst.pos < dst.size) break;       // frame ended early
      if (src.pos == src.size && r != 0 && dst.pos < dst.size) break;  // input ran out
    }
    if (dst.pos != cs) return Corruption(where + " inflates to " + std::to_string(dst.pos) + " bytes, not a cluster");
    return Status::Ok();
  }
  // Raw deflate with a 4 KiB window, as qemu writes it.
  z_stream z{};
  if (inflateInit2(&z, -12) != Z_OK) return Internal("zlib: inflateInit2 failed");
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out;
  z.avail_out = static_cast<uInt>(cs);
  const int r = inflate(&z, Z_FINISH);
  inflateEnd(&z);
  // qemu accepts a stream that fills the cluster even if it does not end there.
  if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || z.avail_out != 0) {
    return Corruption(where + " does not inflate to a full cluster (zlib " + std::to_string(r) + ")");
  }
  return Status::Ok();
}

}  // namespace affinity::profile
