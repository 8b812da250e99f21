#include "profile/guest_file_map_codec.h"

#include <zstd.h>

#include <nlohmann/json.hpp>
#include <vector>

namespace affinity::profile {
namespace {

using nlohmann::json;

constexpr int kZstdLevel = 3;  // a few MB of CBOR: speed matters more than the last percent

json Bytes(const std::string& s) { return json::binary(std::vector<uint8_t>(s.begin(), s.end())); }

Status Bad(const std::string& field, const std::string& why) {
  return Corruption("guest file map: " + field + ": " + why);
}

Result<std::string> GetBytes(const json& j, const std::string& field) {
  if (!j.is_binary()) return Bad(field, "not a byte string");
  const auto& b = j.get_binary();
  return std::string(b.begin(), b.end());
}

Result<uint64_t> GetUint(const json& j, const std::string& field) {
  if (!j.is_number_unsigned()) return Bad(field, "not an unsigned integer");
  return j.get<uint64_t>();
}

Result<std::string> GetText(const json& doc, const char* key, std::initializer_list<const char*> allowed) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) return Bad(key, "missing or not text");
  const std::string v = it->get<std::string>();
  for (const char* a : allowed) {
    if (v == a) return v;
  }
  return Bad(key, "unknown value \"" + v + "\"");
}

bool ValidPartition(const std::string& p) {
  if (p == "whole-disk") return true;
  for (const char* prefix : {"mbr:", "gpt:"}) {
    if (p.rfind(prefix, 0) == 0 && p.size() > 4 && p.size() <= 9 && p[4] != '0' &&
        p.find_first_not_of("0123456789", 4) == std::string::npos) {
      return true;
    }
  }
  return false;
}

Status DecodeFile(const json& f, const std::string& field, uint64_t image_size, GuestFile* out) {
  if (!f.is_array() || f.size() != 7) return Bad(field, "not an array of 7");
  auto path = GetBytes(f[0], field + ".path");
  if (!path.ok()) return path.status();
  if (path->empty()) return Bad(field + ".path", "empty");
  auto kind = GetUint(f[1], field + ".kind");
  if (!kind.ok()) return kind.status();
  if (*kind > static_cast<uint64_t>(GuestFileKind::kMetadata)) return Bad(field + ".kind", "unknown kind");
  auto size = GetUint(f[2], field + ".size");
  if (!size.ok()) return size.status();
  auto link = GetBytes(f[3], field + ".link_target");
  if (!link.ok()) return link.status();
  auto inode_offset = GetUint(f[4], field + ".inode_offset");
  if (!inode_offset.ok()) return inode_offset.status();
  auto inode_length = GetUint(f[5], field + ".inode_length");
  if (!inode_length.ok()) return inode_length.status();
  if (*inode_offset > image_size || *inode_length > image_size - *inode_offset) {
    return Bad(field + ".inode", "past image_size");
  }
  const json& ext = f[6];
  if (!ext.is_array() || ext.size() % 2 != 0) return Bad(field + ".extents", "not an array of offset, length pairs");
  out->path = std::move(*path);
  out->kind = static_cast<GuestFileKind>(*kind);
  out->size = *size;
  out->link_target = std::move(*link);
  out->inode = {*inode_offset, *inode_length};
  out->extents.reserve(ext.size() / 2);
  for (size_t i = 0; i < ext.size(); i += 2) {
    const std::string name = field + ".extents[" + std::to_string(i / 2) + "]";
    auto offset = GetUint(ext[i], name);
    if (!offset.ok()) return offset.status();
    auto length = GetUint(ext[i + 1], name);
    if (!length.ok()) return length.status();
    if (*length == 0 || *offset > image_size || *length > image_size - *offset) {
      return Bad(name, "empty or past image_size");
    }
    out->extents.push_back({*offset, *length});
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeGuestFileMap(const GuestFileMap& map) {
  json files = json::array();
  for (const GuestFile& f : map.files) {
    json extents = json::array();
    for (const ImageExtent& e : f.extents) {
      extents.push_back(e.offset);
      extents.push_back(e.length);
    }
    files.push_back(json::array({Bytes(f.path), static_cast<uint64_t>(f.kind), f.size, Bytes(f.link_target),
                                 f.inode.offset, f.inode.length, std::move(extents)}));
  }
  const json doc{{"format", kGuestFileMapFormat}, {"version", kGuestFileMapVersion},
                 {"container", map.container},     {"partition", map.partition},
                 {"filesystem", map.filesystem},   {"image_size", map.image_size},
                 {"block_size", map.block_size},   {"files", std::move(files)}};
  const std::vector<uint8_t> cbor = json::to_cbor(doc);
  std::string out(ZSTD_compressBound(cbor.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), cbor.data(), cbor.size(), kZstdLevel);
  // Compressing into a ZSTD_compressBound buffer cannot fail except on OOM.
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Result<GuestFileMap> DecodeGuestFileMap(std::string_view bytes) {
  if (bytes.size() > kMaxEncodedGuestFileMapBytes) return Bad("bytes", "over " + std::to_string(kMaxEncodedGuestFileMapBytes));
  const unsigned long long size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxDecodedGuestFileMapBytes) {
    return Bad("zstd", "not a zstd frame of known size up to " + std::to_string(kMaxDecodedGuestFileMapBytes));
  }
  std::vector<uint8_t> cbor(size);
  const size_t n = ZSTD_decompress(cbor.data(), cbor.size(), bytes.data(), bytes.size());
  if (ZSTD_isError(n) || n != size) return Bad("zstd", "does not decompress");
  json doc;
  try {
    doc = json::from_cbor(cbor, /*strict=*/true, /*allow_exceptions=*/false);
  } catch (const json::exception&) {
    doc = json(json::value_t::discarded);  // the DOM builder can throw even so
  }
  if (doc.is_discarded() || !doc.is_object()) return Bad("document", "not a CBOR map");
  if (auto it = doc.find("format"); it == doc.end() || *it != kGuestFileMapFormat) return Bad("format", "not " + std::string(kGuestFileMapFormat));
  if (auto it = doc.find("version"); it == doc.end() || !it->is_number_unsigned() || *it != kGuestFileMapVersion) {
    return Bad("version", "not " + std::to_string(kGuestFileMapVersion));
  }
  GuestFileMap map;
  auto container = GetText(doc, "container", {"raw", "qcow2"});
  if (!container.ok()) return container.status();
  auto filesystem = GetText(doc, "filesystem", {"ext2", "ext3", "ext4"});
  if (!filesystem.ok()) return filesystem.status();
  auto partition = doc.find("partition");
  if (partition == doc.end() || !partition->is_string() || !ValidPartition(partition->get<std::string>())) {
    return Bad("partition", "not whole-disk, mbr:N or gpt:N");
  }
  map.container = *container;
  map.filesystem = *filesystem;
  map.partition = partition->get<std::string>();
  auto image_size = doc.find("image_size");
  if (image_size == doc.end() || !image_size->is_number_unsigned()) return Bad("image_size", "missing or not unsigned");
  map.image_size = image_size->get<uint64_t>();
  auto block_size = doc.find("block_size");
  if (block_size == doc.end() || !block_size->is_number_unsigned()) return Bad("block_size", "missing or not unsigned");
  const uint64_t bs = block_size->get<uint64_t>();
  if (bs < 1024 || bs > 65536 || (bs & (bs - 1)) != 0) return Bad("block_size", "not a power of two in 1024..65536");
  map.block_size = static_cast<uint32_t>(bs);
  auto files = doc.find("files");
  if (files == doc.end() || !files->is_array()) return Bad("files", "missing or not an array");
  map.files.resize(files->size());
  for (size_t i = 0; i < files->size(); ++i) {
    const std::string field = "files[" + std::to_string(i) + "]";
    if (Status s = DecodeFile((*files)[i], field, map.image_size, &map.files[i]); !s.ok()) return s;
    if (i > 0 && !(map.files[i - 1].path < map.files[i].path)) return Bad(field + ".path", "not after the previous path");
  }
  return map;
}

}  // namespace affinity::profile
