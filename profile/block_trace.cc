#include "profile/block_trace.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <type_traits>

namespace affinity::profile {
namespace {

// Parses one non-negative number; false on anything else.
template <typename T>
bool ParseNumber(const std::string& text, T* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  if constexpr (std::is_floating_point_v<T>) {
    double v = std::strtod(text.c_str(), &end);
    if (errno != 0 || *end != '\0' || !std::isfinite(v) || v < 0) return false;
    *out = v;
  } else {
    if (text[0] == '-') return false;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = static_cast<T>(v);
  }
  return true;
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t comma = line.find(',', start);
    std::string f = line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!f.empty() && (f.back() == ' ' || f.back() == '\r')) f.pop_back();
    while (!f.empty() && f.front() == ' ') f.erase(0, 1);
    fields.push_back(f);
    if (comma == std::string::npos) return fields;
    start = comma + 1;
  }
}

}  // namespace

Result<std::vector<TraceRecord>> LoadBlockTrace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno, path);
  std::vector<TraceRecord> records;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line == "\r" || line[0] == '#') continue;
    auto f = SplitCsv(line);
    if (n == 1 && !f.empty() && f[0] == "time_s") continue;  // header
    TraceRecord r;
    std::string op = f.size() == 4 ? f[3] : "";
    if (f.size() != 4 || !ParseNumber(f[0], &r.time_s) || !ParseNumber(f[1], &r.offset) ||
        !ParseNumber(f[2], &r.length) || r.length == 0 || (op != "R" && op != "W" && op != "r" && op != "w")) {
      return InvalidArgument(path + ":" + std::to_string(n) +
                             ": expected time_s,offset,length,op (op R or W, length > 0), got '" + line.substr(0, 120) +
                             "'");
    }
    r.write = op == "W" || op == "w";
    records.push_back(r);
  }
  return records;
}


SessionTrace TraceToSession(const std::vector<TraceRecord>& trace, const std::string& image, std::string id,
                            int64_t start_ms, SessionKind kind, double cut_s) {
  SessionTrace s;
  s.id = std::move(id);
  s.start_ms = start_ms;
  s.kind = kind;
  for (const TraceRecord& r : trace) {
    if (cut_s >= 0 && r.time_s >= cut_s) continue;
    AccessRecord a;
    a.seq = s.records.size();
    a.image = image;
    a.offset = r.offset;
    a.length = r.length;
    a.op = r.write ? AccessOp::kWrite : AccessOp::kRead;
    a.t_us = static_cast<uint64_t>(std::llround(r.time_s * 1e6));
    s.records.push_back(std::move(a));
  }
  return s;
}

}  // namespace affinity::profile
