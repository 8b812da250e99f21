#include "profile/profile_codec.h"

#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/digest.h"
#include "common/names.h"

namespace affinity::profile {
namespace {

using nlohmann::json;

constexpr double kProbabilityScale = 10000;
constexpr double kReadsScale = 100;
constexpr size_t kMaxImages = 4096;
constexpr int kZstdLevel = 9;

uint64_t Quantize(double v, double scale) { return static_cast<uint64_t>(std::llround(std::max(0.0, v) * scale)); }

// nlohmann's CBOR reader can still throw (e.g. from the DOM builder) with
// allow_exceptions=false; any exception means the input is not a profile.
template <typename Bytes>
json ParseCbor(const Bytes& bytes) {
  try {
    return json::from_cbor(bytes, /*strict=*/true, /*allow_exceptions=*/false);
  } catch (const json::exception&) {
    return json(json::value_t::discarded);
  }
}

std::vector<uint8_t> ToBytes(std::string_view s) { return {s.begin(), s.end()}; }

json EncodeImage(const ImageProfile& img) {
  json block = json::array(), score = json::array(), support = json::array(), boot = json::array(),
       reads = json::array(), first = json::array(), hours = json::array(), weekdays = json::array(),
       live = json::array(), from = json::array(), to = json::array(), count = json::array();
  uint32_t prev = 0;
  for (const BlockProfile& b : img.blocks) {
    block.push_back(b.block - prev);
    prev = b.block;
    score.push_back(Quantize(b.score, kProbabilityScale));
    support.push_back(Quantize(b.support, kProbabilityScale));
    boot.push_back(Quantize(b.boot_support, kProbabilityScale));
    reads.push_back(Quantize(b.decayed_reads, kReadsScale));
    first.push_back(b.first_ms);
    hours.push_back(b.hours);
    weekdays.push_back(b.weekdays);
    live.push_back(b.live_last_ms + 1);  // 0 = not read by the live session
  }
  uint32_t prev_from = 0;
  for (const SuccessorEdge& e : img.successors) {
    from.push_back(e.from - prev_from);
    prev_from = e.from;
    to.push_back(static_cast<int64_t>(e.to) - static_cast<int64_t>(e.from));
    count.push_back(e.count);
  }
  return json{{"name", img.name},       {"block", block}, {"score", score},   {"support", support},
              {"boot", boot},           {"reads", reads}, {"first_ms", first}, {"hours", hours},
              {"weekdays", weekdays},   {"live", live},   {"succ_from", from}, {"succ_to", to},
              {"succ_count", count}};
}

// Strict readers: each names the field it rejects.
Result<const json*> Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return InvalidArgument(std::string("profile: '") + name + "' is missing");
  return &*it;
}

Result<uint64_t> Unsigned(const json& obj, const char* name, uint64_t max) {
  auto f = Field(obj, name);
  if (!f.ok()) return f.status();
  if (!(*f)->is_number_unsigned() || (*f)->get<uint64_t>() > max) {
    return InvalidArgument(std::string("profile: '") + name + "' is not an integer in 0.." + std::to_string(max));
  }
  return (*f)->get<uint64_t>();
}

Result<std::string> Text(const json& obj, const char* name, size_t max_len) {
  auto f = Field(obj, name);
  if (!f.ok()) return f.status();
  if (!(*f)->is_string() || (*f)->get_ref<const std::string&>().size() > max_len) {
    return InvalidArgument(std::string("profile: '") + name + "' is not a string of at most " +
                           std::to_string(max_len) + " bytes");
  }
  return (*f)->get<std::string>();
}

// An array of `n` integers in [min, max] (n = SIZE_MAX: any length).
Result<std::vector<int64_t>> Column(const json& obj, const char* name, size_t n, int64_t min, int64_t max) {
  auto f = Field(obj, name);
  if (!f.ok()) return f.status();
  const json& a = **f;
  if (!a.is_array() || (n != SIZE_MAX && a.size() != n)) {
    return InvalidArgument(std::string("profile: '") + name + "' is not an array" +
                           (n != SIZE_MAX ? " of " + std::to_string(n) + " entries" : std::string()));
  }
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (const json& v : a) {
    bool ok = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX});
    if (ok) {
      int64_t x = v.get<int64_t>();
      ok = x >= min && x <= max;
      if (ok) out.push_back(x);
    }
    if (!ok) {
      return InvalidArgument(std::string("profile: '") + name + "' has a value outside " + std::to_string(min) +
                             ".." + std::to_string(max));
    }
  }
  return out;
}

Result<ImageProfile> DecodeImage(const json& j) {
  if (!j.is_object()) return InvalidArgument("profile: an image entry is not a map");
  ImageProfile img;
  auto name = Text(j, "name", 255);
  if (!name.ok()) return name.status();
  if (Status s = ValidateName("image", *name); !s.ok()) return InvalidArgument("profile: " + s.message());
  img.name = *name;
  auto block = Column(j, "block", SIZE_MAX, 0, UINT32_MAX);
  if (!block.ok()) return block.status();
  const size_t n = block->size();
  constexpr int64_t kP = static_cast<int64_t>(kProbabilityScale);
  auto score = Column(j, "score", n, 0, kP);
  auto support = Column(j, "support", n, 0, kP);
  auto boot = Column(j, "boot", n, 0, kP);
  auto reads = Column(j, "reads", n, 0, UINT32_MAX);
  auto first = Column(j, "first_ms", n, 0, UINT32_MAX);
  auto hours = Column(j, "hours", n, 0, (1 << 24) - 1);
  auto weekdays = Column(j, "weekdays", n, 0, 127);
  auto live = Column(j, "live", n, 0, INT64_MAX);
  for (const auto* c : {&score, &support, &boot, &reads, &first, &hours, &weekdays, &live}) {
    if (!c->ok()) return c->status();
  }
  img.blocks.resize(n);
  uint64_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (*block)[i] == 0) return InvalidArgument("profile: 'block' is not strictly increasing");
    at += static_cast<uint64_t>((*block)[i]);
    if (at > UINT32_MAX) return InvalidArgument("profile: 'block' runs past 2^32 blocks");
    BlockProfile& b = img.blocks[i];
    b.block = static_cast<uint32_t>(at);
    b.score = static_cast<float>((*score)[i] / kProbabilityScale);
    b.support = static_cast<float>((*support)[i] / kProbabilityScale);
    b.boot_support = static_cast<float>((*boot)[i] / kProbabilityScale);
    b.decayed_reads = static_cast<float>((*reads)[i] / kReadsScale);
    b.first_ms = static_cast<uint32_t>((*first)[i]);
    b.hours = static_cast<uint32_t>((*hours)[i]);
    b.weekdays = static_cast<uint8_t>((*weekdays)[i]);
    b.live_last_ms = (*live)[i] - 1;
  }
  auto from = Column(j, "succ_from", SIZE_MAX, 0, UINT32_MAX);
  if (!from.ok()) return from.status();
  auto to = Column(j, "succ_to", from->size(), -int64_t{UINT32_MAX}, UINT32_MAX);
  auto count = Column(j, "succ_count", from->size(), 1, UINT32_MAX);
  if (!to.ok()) return to.status();
  if (!count.ok()) return count.status();
  uint64_t f = 0;
  img.successors.resize(from->size());
  for (size_t i = 0; i < from->size(); ++i) {
    f += static_cast<uint64_t>((*from)[i]);
    const int64_t t = static_cast<int64_t>(f) + (*to)[i];
    if (f > UINT32_MAX || t < 0 || t > int64_t{UINT32_MAX}) {
      return InvalidArgument("profile: a successor edge points outside 0..2^32");
    }
    img.successors[i] = {static_cast<uint32_t>(f), static_cast<uint32_t>(t), static_cast<uint32_t>((*count)[i])};
  }
  return img;
}

Result<Profile> DecodeDocument(const json& j) {
  if (!j.is_object()) return InvalidArgument("profile: the document is not a map");
  Profile p;
  auto vm = Text(j, "vm", 128);
  if (!vm.ok()) return vm.status();
  p.vm = *vm;
  if (Status s = ValidateName("vm", p.vm); !s.ok()) return InvalidArgument("profile: " + s.message());
  auto built = Unsigned(j, "built_ms", INT64_MAX);
  auto target = Unsigned(j, "target_ms", INT64_MAX);
  auto block_size = Unsigned(j, "block_size", 4 << 20);
  auto sessions = Unsigned(j, "sessions", UINT32_MAX);
  auto boot = Unsigned(j, "boot_sessions", UINT32_MAX);
  auto live = Text(j, "live_session", 64);
  auto elapsed = Unsigned(j, "live_elapsed_ms", INT64_MAX);
  for (const auto* r : {&built, &target, &block_size, &sessions, &boot, &elapsed}) {
    if (!r->ok()) return r->status();
  }
  if (!live.ok()) return live.status();
  if (*block_size < 4096 || (*block_size & (*block_size - 1)) != 0) {
    return InvalidArgument("profile: 'block_size' must be a power of two from 4096 to 4 MiB");
  }
  p.built_ms = static_cast<int64_t>(*built);
  p.target_ms = static_cast<int64_t>(*target);
  p.block_size = static_cast<uint32_t>(*block_size);
  p.sessions = static_cast<uint32_t>(*sessions);
  p.boot_sessions = static_cast<uint32_t>(*boot);
  p.live_session = *live;
  p.live_elapsed_ms = *elapsed;
  auto hours = Column(j, "hours", 24, 0, INT64_MAX);
  auto weekdays = Column(j, "weekdays", 7, 0, INT64_MAX);
  if (!hours.ok()) return hours.status();
  if (!weekdays.ok()) return weekdays.status();
  std::copy(hours->begin(), hours->end(), p.hour_histogram.begin());
  std::copy(weekdays->begin(), weekdays->end(), p.weekday_histogram.begin());
  auto sigs = Field(j, "signatures");
  if (!sigs.ok()) return sigs.status();
  if (!(*sigs)->is_array()) return InvalidArgument("profile: 'signatures' is not an array");
  for (const json& s : **sigs) {
    if (!s.is_array() || s.size() != 2 || !s[0].is_string() || !s[1].is_string()) {
      return InvalidArgument("profile: a signature is not [application, evidence]");
    }
    p.signatures.push_back({s[0].get<std::string>(), s[1].get<std::string>()});
  }
  auto images = Field(j, "images");
  if (!images.ok()) return images.status();
  if (!(*images)->is_array() || (*images)->size() > kMaxImages) {
    return InvalidArgument("profile: 'images' is not an array of at most " + std::to_string(kMaxImages));
  }
  for (const json& i : **images) {
    auto img = DecodeImage(i);
    if (!img.ok()) return img.status();
    for (const ImageProfile& other : p.images) {
      if (other.name == img->name) return InvalidArgument("profile: image '" + img->name + "' appears twice");
    }
    p.images.push_back(std::move(img).value());
  }
  return p;
}

}  // namespace

std::string EncodeProfile(const Profile& p) {
  json images = json::array();
  for (const ImageProfile& img : p.images) images.push_back(EncodeImage(img));
  json sigs = json::array();
  for (const SignatureMatch& s : p.signatures) sigs.push_back({s.application, s.evidence});
  json doc{{"vm", p.vm},
           {"built_ms", p.built_ms},
           {"target_ms", p.target_ms},
           {"block_size", p.block_size},
           {"sessions", p.sessions},
           {"boot_sessions", p.boot_sessions},
           {"hours", p.hour_histogram},
           {"weekdays", p.weekday_histogram},
           {"live_session", p.live_session},
           {"live_elapsed_ms", p.live_elapsed_ms},
           {"signatures", sigs},
           {"images", images}};
  const std::vector<uint8_t> cbor = json::to_cbor(doc);
  return SealProfileDocument(std::string_view(reinterpret_cast<const char*>(cbor.data()), cbor.size()));
}

std::string SealProfileDocument(std::string_view cbor) {
  std::vector<uint8_t> packed(ZSTD_compressBound(cbor.size()));
  const size_t n = ZSTD_compress(packed.data(), packed.size(), cbor.data(), cbor.size(), kZstdLevel);
  // Compressing into a ZSTD_compressBound buffer cannot fail except on OOM.
  packed.resize(ZSTD_isError(n) ? 0 : n);
  const Sha256Bytes digest = Sha256(std::span<const uint8_t>(packed));
  json envelope{{"format", "affinity-profile"},
                {"version", Profile::kFormatVersion},
                {"sha256", json::binary(std::vector<uint8_t>(digest.begin(), digest.end()))},
                {"zstd", json::binary(std::move(packed))}};
  const std::vector<uint8_t> out = json::to_cbor(envelope);
  return std::string(out.begin(), out.end());
}

Result<Profile> DecodeProfile(std::string_view bytes) {
  if (bytes.size() > kMaxEncodedProfileBytes) {
    return InvalidArgument("profile: " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                           std::to_string(kMaxEncodedProfileBytes));
  }
  const json envelope = ParseCbor(ToBytes(bytes));
  if (envelope.is_discarded() || !envelope.is_object()) return InvalidArgument("profile: not a CBOR profile envelope");
  auto format = envelope.find("format");
  if (format == envelope.end() || *format != "affinity-profile") {
    return InvalidArgument("profile: 'format' is not \"affinity-profile\"");
  }
  auto version = Unsigned(envelope, "version", UINT32_MAX);
  if (!version.ok()) return version.status();
  if (*version != Profile::kFormatVersion) {
    return InvalidArgument("profile: format version " + std::to_string(*version) + " is not supported (this build reads " +
                           std::to_string(Profile::kFormatVersion) + ")");
  }
  auto sha = envelope.find("sha256");
  auto packed = envelope.find("zstd");
  if (sha == envelope.end() || !sha->is_binary() || sha->get_binary().size() != 32 || packed == envelope.end() ||
      !packed->is_binary()) {
    return InvalidArgument("profile: 'sha256' (32 bytes) or 'zstd' (bytes) is missing");
  }
  const auto& data = packed->get_binary();
  const Sha256Bytes digest = Sha256(std::span<const uint8_t>(data.data(), data.size()));
  if (!std::equal(digest.begin(), digest.end(), sha->get_binary().begin())) {
    return Corruption("profile: the SHA-256 of its contents does not match (damaged or altered)");
  }
  const unsigned long long size = ZSTD_getFrameContentSize(data.data(), data.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxDecodedProfileBytes) {
    return InvalidArgument("profile: the zstd frame is invalid, of unknown size or over " +
                           std::to_string(kMaxDecodedProfileBytes) + " bytes");
  }
  std::vector<uint8_t> cbor(size);
  const size_t n = ZSTD_decompress(cbor.data(), cbor.size(), data.data(), data.size());
  if (ZSTD_isError(n) || n != size) return InvalidArgument("profile: the zstd frame does not decompress");
  const json doc = ParseCbor(cbor);
  if (doc.is_discarded()) return InvalidArgument("profile: the contents are not CBOR");
  return DecodeDocument(doc);
}

Result<std::string> ReadProfileFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot open profile file '" + path + "'");
  std::string bytes(kMaxEncodedProfileBytes + 1, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (in.bad()) return IoError("cannot read profile file '" + path + "'");
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (bytes.size() > kMaxEncodedProfileBytes) {
    return InvalidArgument("'" + path + "' is over " + std::to_string(kMaxEncodedProfileBytes) +
                           " bytes: not a profile");
  }
  return bytes;
}

std::string ProfileId(std::string_view encoded) { return ToHex(Sha256(encoded)).substr(0, 16); }

}  // namespace affinity::profile
