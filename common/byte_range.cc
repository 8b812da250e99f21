#include "common/byte_range.h"

#include <charconv>

namespace affinity {
namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ByteRange> ParseRangeHeader(std::string_view value, uint64_t size) {
  value = Trim(value);
  constexpr std::string_view kUnit = "bytes=";
  if (value.substr(0, kUnit.size()) != kUnit) return InvalidArgument("range unit must be 'bytes'");
  std::string_view spec = Trim(value.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return InvalidArgument("multiple ranges are not supported");
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return InvalidArgument("range has no '-'");
  std::string_view first_s = spec.substr(0, dash);
  std::string_view last_s = spec.substr(dash + 1);
  uint64_t first = 0, last = 0;
  if (first_s.empty()) {  // suffix range: the last N bytes
    if (!ParseU64(last_s, &last)) return InvalidArgument("bad suffix length");
    if (last == 0 || size == 0) return OutOfRange("empty suffix range");
    uint64_t n = last < size ? last : size;
    return ByteRange{size - n, n};
  }
  if (!ParseU64(first_s, &first)) return InvalidArgument("bad range start");
  if (last_s.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!ParseU64(last_s, &last)) {
    return InvalidArgument("bad range end");
  } else if (last < first) {
    return InvalidArgument("range end before start");
  }
  if (first >= size) return OutOfRange("range starts at or past the end of the object");
  if (last >= size) last = size - 1;
  return ByteRange{first, last - first + 1};
}

std::string FormatRangeHeader(const ByteRange& range) {
  return "bytes=" + std::to_string(range.offset) + "-" + std::to_string(range.end() - 1);
}

std::string FormatContentRange(const ByteRange& range, uint64_t size) {
  return "bytes " + std::to_string(range.offset) + "-" + std::to_string(range.end() - 1) + "/" + std::to_string(size);
}

Result<ByteRange> ParseContentRange(std::string_view value) {
  value = Trim(value);
  constexpr std::string_view kUnit = "bytes ";
  if (value.substr(0, kUnit.size()) != kUnit) return Corruption("Content-Range unit must be 'bytes'");
  std::string_view spec = value.substr(kUnit.size());
  size_t dash = spec.find('-');
  size_t slash = spec.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return Corruption("malformed Content-Range");
  }
  uint64_t first = 0, last = 0;
  if (!ParseU64(spec.substr(0, dash), &first) || !ParseU64(spec.substr(dash + 1, slash - dash - 1), &last) ||
      last < first) {
    return Corruption("malformed Content-Range bounds");
  }
  return ByteRange{first, last - first + 1};
}

}  // namespace affinity
