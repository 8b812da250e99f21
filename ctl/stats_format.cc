#include "ctl/stats_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace affinity::ctl {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

enum class Kind { kText, kBytes, kRatio, kMicros };

Kind KindOf(std::string_view name) {
  if (EndsWith(name, "_ratio") || EndsWith(name, "accuracy") || EndsWith(name, "coverage")) return Kind::kRatio;
  if (EndsWith(name, "_us")) return Kind::kMicros;
  if (name.find("bytes") != std::string_view::npos || name == "chunk_size" || name == "cache_size_limit") {
    return Kind::kBytes;
  }
  return Kind::kText;
}

template <typename T>
bool ParseWhole(std::string_view text, T& out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && p == end;
}

std::optional<uint64_t> AsUnsigned(std::string_view text) {
  uint64_t n = 0;
  if (ParseWhole(text, n)) return n;
  return std::nullopt;
}

std::optional<double> AsDouble(std::string_view text) {
  auto n = ParseNumber(text);
  if (!n) return std::nullopt;
  return std::visit([](auto v) { return static_cast<double>(v); }, *n);
}

std::string Printf(const char* format, double v, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v, unit);
  return buf;
}

}  // namespace

std::optional<Number> ParseNumber(std::string_view text) {
  if (text.empty()) return std::nullopt;
  // from_chars accepts "inf", "nan" and "infinity"; a number here starts with
  // a digit, or a '-' then a digit.
  size_t first = text[0] == '-' ? 1 : 0;
  if (first >= text.size() || text[first] < '0' || text[first] > '9') return std::nullopt;
  if (uint64_t u = 0; ParseWhole(text, u)) return u;
  if (int64_t i = 0; ParseWhole(text, i)) return i;
  if (double d = 0; ParseWhole(text, d) && std::isfinite(d)) return d;
  return std::nullopt;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  size_t unit = 0;
  uint64_t whole = bytes;
  bool exact = true;
  while (whole >= 1024 && unit + 1 < std::size(kUnits)) {
    exact = exact && whole % 1024 == 0;
    whole /= 1024;
    ++unit;
  }
  if (exact) return std::to_string(whole) + " " + kUnits[unit];
  return Printf("%.1f %s", static_cast<double>(bytes) / std::pow(1024.0, static_cast<double>(unit)), kUnits[unit]);
}

std::string HumanValue(std::string_view name, std::string_view value) {
  switch (KindOf(name)) {
    case Kind::kRatio: {
      auto r = AsDouble(value);
      if (!r) break;
      return Printf("%.2f%s", *r * 100, "%");
    }
    case Kind::kBytes: {
      auto n = AsUnsigned(value);
      if (!n) break;
      if (name == "cache_size_limit" && *n == 0) return "unlimited";
      return HumanBytes(*n);
    }
    case Kind::kMicros: {
      auto n = AsUnsigned(value);
      if (!n) break;
      if (*n >= 1000000) return Printf("%.2f %s", static_cast<double>(*n) / 1e6, "s");
      if (*n >= 1000) return Printf("%.2f %s", static_cast<double>(*n) / 1e3, "ms");
      return std::to_string(*n) + " us";
    }
    case Kind::kText: break;
  }
  return std::string(value);
}

std::string FormatTable(const Attributes& attrs) {
  size_t width = 0;
  for (const auto& [name, value] : attrs) width = std::max(width, name.size());
  std::string out;
  for (const auto& [name, value] : attrs) {
    out += name;
    out.append(width + 2 - name.size(), ' ');
    out += HumanValue(name, value);
    out += '\n';
  }
  return out;
}

std::string FormatJson(const Attributes& attrs) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  for (const auto& [name, value] : attrs) {
    auto n = ParseNumber(value);
    if (n) {
      std::visit([&, &key = name](auto v) { doc[key] = v; }, *n);
    } else {
      doc[name] = value;
    }
  }
  // A value that is not UTF-8 (only a foreign user.affinity.* could be) is
  // shown with replacement characters rather than failing the whole dump.
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string FormatPrefetchProgress(const Attributes& attrs, int width) {
  auto get = [&](std::string_view name) -> std::optional<std::string> {
    for (const auto& [k, v] : attrs) {
      if (k == name) return v;
    }
    return std::nullopt;
  };
  auto number = [&](std::string_view name) -> uint64_t {
    auto v = get(name);
    auto n = v ? ParseNumber(*v) : std::nullopt;
    return n && std::holds_alternative<uint64_t>(*n) ? std::get<uint64_t>(*n) : 0;
  };
  const auto state = get("prefetch_state");
  if (!state || *state == "off") return {};
  const uint64_t planned = number("prefetch_planned_bytes");
  const uint64_t done = number("prefetch_done_bytes");
  const double fraction = planned == 0 ? (*state == "idle" ? 1.0 : 0.0) : std::min(1.0, double(done) / double(planned));
  width = std::max(width, 10);
  const int filled = static_cast<int>(fraction * width + 0.5);
  std::string bar = "prefetch [" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  char tail[160];
  std::snprintf(tail, sizeof tail, "%3.0f%% %s of %s, %s queued, %s", fraction * 100, HumanBytes(done).c_str(),
                HumanBytes(planned).c_str(), get("prefetch_queued").value_or("0").c_str(), state->c_str());
  bar += tail;
  if (auto acc = get("prefetch_accuracy")) bar += ", accuracy " + HumanValue("prefetch_accuracy", *acc);
  if (auto cov = get("prefetch_coverage")) bar += ", coverage " + HumanValue("prefetch_coverage", *cov);
  return bar + "\n";
}

}  // namespace affinity::ctl
