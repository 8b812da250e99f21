#include "ctl/stats_format.h"

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace affinity::ctl {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsByteCount(const std::string& name) {
  return name.find("bytes") != std::string::npos || name == "chunk_size" || name == "cache_size_limit";
}

}  // namespace

std::string HumanValue(const std::string& name, const std::string& value) {
  char buf[64];
  if (EndsWith(name, "_ratio") || EndsWith(name, "accuracy") || EndsWith(name, "coverage")) {
    std::snprintf(buf, sizeof buf, "%.1f %%", std::atof(value.c_str()) * 100);
    return buf;
  }
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || p != value.data() + value.size()) return value;
  if (IsByteCount(name)) {
    if (name == "cache_size_limit" && n == 0) return "unlimited";
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024 && u < 5) {
      v /= 1024;
      ++u;
    }
    if (u == 0) return std::to_string(n) + " B";
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
  }
  if (EndsWith(name, "_us")) {
    if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2f s", static_cast<double>(n) / 1e6);
    else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.2f ms", static_cast<double>(n) / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu us", static_cast<unsigned long long>(n));
    return buf;
  }
  return value;
}

std::string FormatTable(const Attributes& attrs) {
  size_t width = 0;
  for (const auto& [k, v] : attrs) width = std::max(width, k.size());
  std::string out;
  for (const auto& [k, v] : attrs) {
    out += k;
    out.append(width + 2 - k.size(), ' ');
    out += HumanValue(k, v);
    out += '\n';
  }
  return out;
}

std::string FormatJson(const Attributes& attrs) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  for (const auto& [k, v] : attrs) {
    uint64_t u = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), u);
    if (ec == std::errc() && p == v.data() + v.size() && !v.empty()) {
      doc[k] = u;
      continue;
    }
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (!v.empty() && end == v.c_str() + v.size()) {
      doc[k] = d;
    } else {
      doc[k] = v;
    }
  }
  return doc.dump(2);
}

}  // namespace affinity::ctl
