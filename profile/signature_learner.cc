#include "profile/signature_learner.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <unordered_map>

namespace affinity::profile {
namespace {

struct Span {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint32_t file = 0;
};

// Data ranges of every file, sorted by start. Extents of distinct files do
// not overlap (a block belongs to one inode), so the ranges a read touches
// are a contiguous run of this vector.
std::vector<Span> DataSpans(const GuestFileMap& map) {
  std::vector<Span> spans;
  for (uint32_t i = 0; i < map.files.size(); ++i) {
    for (const ImageExtent& e : map.files[i].extents) {
      if (e.length > 0) spans.push_back({e.offset, e.offset + e.length, i});
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return spans;
}

// First read of each file in one session, ms since its start.
std::unordered_map<uint32_t, uint32_t> FirstReads(const SessionTrace& session, const std::string& image,
                                                  const std::vector<Span>& spans) {
  std::unordered_map<uint32_t, uint32_t> first;
  for (const AccessRecord& r : session.records) {
    if (r.op != AccessOp::kRead || r.image != image || r.length == 0) continue;
    const uint64_t end = r.offset + r.length;
    // The first span ending after the read's start; overlapping ones follow.
    auto it = std::partition_point(spans.begin(), spans.end(), [&](const Span& s) { return s.end <= r.offset; });
    const auto ms = static_cast<uint32_t>(std::min<uint64_t>(r.t_us / 1000, std::numeric_limits<uint32_t>::max()));
    for (; it != spans.end() && it->begin < end; ++it) {
      auto [slot, inserted] = first.try_emplace(it->file, ms);
      if (!inserted) slot->second = std::min(slot->second, ms);
    }
  }
  return first;
}

uint32_t Median(std::vector<uint32_t>& values) {
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  return *mid;
}

}  // namespace

std::vector<LearnedPath> LearnSignaturePaths(const std::vector<SessionTrace>& sessions, const std::string& image,
                                             const GuestFileMap& map, const FileOwner& owner,
                                             const LearnOptions& options) {
  const std::vector<Span> spans = DataSpans(map);
  std::unordered_map<uint32_t, std::vector<uint32_t>> reads;  // file -> first read ms, one per start that read it
  size_t starts = 0;
  for (const SessionTrace& s : sessions) {
    if (s.kind != SessionKind::kStart) continue;
    ++starts;
    for (const auto& [file, ms] : FirstReads(s, image, spans)) reads[file].push_back(ms);
  }
  std::vector<LearnedPath> learned;
  if (starts == 0) return learned;
  for (auto& [file, times] : reads) {
    const float support = static_cast<float>(times.size()) / static_cast<float>(starts);
    if (support < options.min_support) continue;
    const GuestFile& f = map.files[file];
    const uint32_t first_ms = Median(times);
    const bool in_boot = first_ms <= options.boot_window_ms;
    std::string app = owner ? owner(f) : std::string();
    std::string phase;
    if (app == kLinuxBootApplication) {
      phase = in_boot ? "boot" : "steady";
    } else if (!app.empty()) {
      phase = in_boot ? "service-start" : "steady";
    } else if (in_boot) {
      app = kLinuxBootApplication;
      phase = "boot";
    } else {
      continue;  // this VM's own data: nothing another VM can use
    }
    learned.push_back({std::move(app), f.path, std::move(phase), support, first_ms});
  }
  std::sort(learned.begin(), learned.end(), [](const LearnedPath& a, const LearnedPath& b) {
    return std::tie(a.application, a.first_ms, a.path) < std::tie(b.application, b.first_ms, b.path);
  });
  return learned;
}

}  // namespace affinity::profile
