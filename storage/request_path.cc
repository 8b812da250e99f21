#include "storage/request_path.h"

namespace affinity::storage {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::vector<std::string>> DecodePathSegments(std::string_view target) {
  target = target.substr(0, target.find('?'));
  if (target.empty() || target.front() != '/') {
    return InvalidArgument("request target must be a path starting with '/'");
  }
  std::vector<std::string> segments;
  std::string current;
  for (size_t i = 1; i <= target.size(); ++i) {
    if (i == target.size() || target[i] == '/') {
      segments.push_back(std::move(current));
      current.clear();
      continue;
    }
    char c = target[i];
    if (c != '%') {
      current += c;
      continue;
    }
    if (i + 2 >= target.size()) {
      return InvalidArgument("truncated %-escape in the request path");
    }
    int hi = HexValue(target[i + 1]);
    int lo = HexValue(target[i + 2]);
    if (hi < 0 || lo < 0) return InvalidArgument("bad %-escape in the request path");
    char decoded = static_cast<char>(hi * 16 + lo);
    if (decoded == '\0') return InvalidArgument("escaped NUL (%00) in the request path");
    current += decoded;
    i += 2;
  }
  if (segments.size() > 1 && segments.back().empty()) segments.pop_back();  // trailing slash
  return segments;
}

}  // namespace affinity::storage
