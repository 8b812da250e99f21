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
  uint64_t data_offset = 0;  // where this extent starts in the file's data
};

// What one session read of one file.
struct FileRead {
  uint32_t first_ms = 0;
  std::vector<FileRange> ranges;
};

// Sorted, overlapping and touching ranges merged.
void Merge(std::vector<FileRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const FileRange& a, const FileRange& b) { return a.offset < b.offset; });
  std::vector<FileRange> out;
  for (const FileRange& r : ranges) {
    if (!out.empty() && r.offset <= out.back().offset + out.back().length) {
      out.back().length = std::max(out.back().offset + out.back().length, r.offset + r.length) - out.back().offset;
    } else {
      out.push_back(r);
    }
  }
  ranges = std::move(out);
}

// Data ranges of every file, sorted by start. Extents of distinct files do
// not overlap (a block belongs to one inode), so the ranges a read touches
// are a contiguous run of this vector.
std::vector<Span> DataSpans(const GuestFileMap& map) {
  std::vector<Span> spans;
  for (uint32_t i = 0; i < map.files.size(); ++i) {
    uint64_t data = 0;
    for (const ImageExtent& e : map.files[i].extents) {
      if (e.length > 0) spans.push_back({e.offset, e.offset + e.length, i, data});
      data += e.length;
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return spans;
}

// First read of each file in one session, ms since its start, and what of it was read.
std::unordered_map<uint32_t, FileRead> SessionReads(const SessionTrace& session, const std::string& image,
                                                   const std::vector<Span>& spans) {
  std::unordered_map<uint32_t, FileRead> reads;
  for (const AccessRecord& r : session.records) {
    if (r.op != AccessOp::kRead || r.image != image || r.length == 0) continue;
    const uint64_t end = r.offset + r.length;
    // The first span ending after the read's start; overlapping ones follow.
    auto it = std::partition_point(spans.begin(), spans.end(), [&](const Span& s) { return s.end <= r.offset; });
    const auto ms = static_cast<uint32_t>(std::min<uint64_t>(r.t_us / 1000, std::numeric_limits<uint32_t>::max()));
    for (; it != spans.end() && it->begin < end; ++it) {
      auto [slot, inserted] = reads.try_emplace(it->file, FileRead{ms, {}});
      if (!inserted) slot->second.first_ms = std::min(slot->second.first_ms, ms);
      const uint64_t from = std::max(r.offset, it->begin);
      const uint64_t to = std::min(end, it->end);
      slot->second.ranges.push_back({it->data_offset + (from - it->begin), to - from});
    }
  }
  return reads;
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
  struct Reads {
    std::vector<uint32_t> first_ms;  // one per start that read the file
    std::vector<FileRange> ranges;   // what any of them read
  };
  std::unordered_map<uint32_t, Reads> reads;
  size_t starts = 0;
  for (const SessionTrace& s : sessions) {
    if (s.kind != SessionKind::kStart) continue;
    ++starts;
    for (auto& [file, read] : SessionReads(s, image, spans)) {
      Reads& all = reads[file];
      all.first_ms.push_back(read.first_ms);
      all.ranges.insert(all.ranges.end(), read.ranges.begin(), read.ranges.end());
    }
  }
  std::vector<LearnedPath> learned;
  if (starts == 0) return learned;
  for (auto& [file, read] : reads) {
    const float support = static_cast<float>(read.first_ms.size()) / static_cast<float>(starts);
    if (support < options.min_support) continue;
    const GuestFile& f = map.files[file];
    const uint32_t first_ms = Median(read.first_ms);
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
    Merge(read.ranges);
    uint64_t data = 0;
    for (const ImageExtent& e : f.extents) data += e.length;
    // All of it read: say so (the file may differ in size elsewhere).
    if (read.ranges.size() == 1 && read.ranges[0].offset == 0 && read.ranges[0].length >= data) read.ranges.clear();
    learned.push_back({std::move(app), f.path, std::move(phase), support, first_ms, std::move(read.ranges)});
  }
  std::sort(learned.begin(), learned.end(), [](const LearnedPath& a, const LearnedPath& b) {
    return std::tie(a.application, a.first_ms, a.path) < std::tie(b.application, b.first_ms, b.path);
  });
  return learned;
}

}  // namespace affinity::profile
