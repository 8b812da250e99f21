#include "profile/trace_attribution.h"

#include <algorithm>
#include <unordered_map>

namespace affinity::profile {
namespace {

struct Interval {
  uint64_t offset, end;
  size_t file;  // index into map.files
};

// Bytes of [offset, end) inside the sorted, disjoint `intervals`; calls
// on_hit(interval, bytes) for each one touched.
template <typename OnHit>
uint64_t Overlap(const std::vector<Interval>& intervals, uint64_t offset, uint64_t end, OnHit on_hit) {
  auto it = std::upper_bound(intervals.begin(), intervals.end(), offset,
                             [](uint64_t o, const Interval& i) { return o < i.offset; });
  if (it != intervals.begin()) --it;
  uint64_t total = 0;
  for (; it != intervals.end() && it->offset < end; ++it) {
    const uint64_t lo = std::max(offset, it->offset), hi = std::min(end, it->end);
    if (lo >= hi) continue;
    total += hi - lo;
    on_hit(*it, hi - lo);
  }
  return total;
}

// Sorts and drops intervals overlapping an earlier one (hard links repeat extents).
void Disjoint(std::vector<Interval>* v) {
  std::sort(v->begin(), v->end(), [](const Interval& a, const Interval& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.file < b.file;
  });
  std::vector<Interval> out;
  for (const Interval& i : *v) {
    if (!out.empty() && i.offset < out.back().end) {
      // Adjacent metadata ranges merge; a second file's copy of the same extent is dropped.
      continue;
    }
    out.push_back(i);
  }
  *v = std::move(out);
}

}  // namespace

TraceAttribution AttributeTrace(const GuestFileMap& map, const std::vector<TraceRecord>& trace, double window_s) {
  std::vector<Interval> data, meta;
  for (size_t i = 0; i < map.files.size(); ++i) {
    const GuestFile& f = map.files[i];
    auto& into = f.kind == GuestFileKind::kMetadata ? meta : data;
    for (const ImageExtent& e : f.extents) into.push_back({e.offset, e.offset + e.length, i});
    if (f.inode.length > 0) meta.push_back({f.inode.offset, f.inode.offset + f.inode.length, i});
  }
  Disjoint(&data);
  Disjoint(&meta);

  TraceAttribution out;
  std::unordered_map<size_t, size_t> index;  // file -> its entry in out.files
  for (const TraceRecord& r : trace) {
    if (r.write || r.length == 0 || (window_s >= 0 && r.time_s >= window_s)) continue;
    ++out.reads;
    out.read_bytes += r.length;
    const uint64_t end = r.offset + r.length < r.offset ? UINT64_MAX : r.offset + r.length;
    const uint64_t in_files = Overlap(data, r.offset, end, [&](const Interval& i, uint64_t bytes) {
      auto [it, fresh] = index.try_emplace(i.file, out.files.size());
      if (fresh) out.files.push_back({map.files[i.file].path, r.time_s, 0, 0});
      FileReads& f = out.files[it->second];
      f.first_read_s = std::min(f.first_read_s, r.time_s);
      ++f.reads;
      f.bytes += bytes;
    });
    const uint64_t rest = r.length - std::min(r.length, in_files);
    out.unattributed_bytes += rest;
    out.metadata_bytes += std::min(rest, Overlap(meta, r.offset, end, [](const Interval&, uint64_t) {}));
  }
  std::sort(out.files.begin(), out.files.end(), [](const FileReads& a, const FileReads& b) {
    return a.first_read_s != b.first_read_s ? a.first_read_s < b.first_read_s : a.path < b.path;
  });
  return out;
}

}  // namespace affinity::profile
