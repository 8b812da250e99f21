#include "profile/profile_builder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace affinity::profile {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayMs = 24 * kHourMs;

int HourOfDay(int64_t wall_ms) { return static_cast<int>(((wall_ms / kHourMs) % 24 + 24) % 24); }
// 1970-01-01 was a Thursday (4).
int Weekday(int64_t wall_ms) { return static_cast<int>(((wall_ms / kDayMs + 4) % 7 + 7) % 7); }
bool IsWeekend(int weekday) { return weekday == 0 || weekday == 6; }

struct BlockAccumulator {
  double weight = 0;        // sum of w_s over sessions that read it
  double decayed_reads = 0; // sum of decay_s * reads_s
  uint32_t boot_starts = 0; // VM starts that read it within the boot window
  uint32_t hours = 0;
  uint8_t weekdays = 0;
  int64_t live_last_ms = -1;
  std::vector<std::pair<uint32_t, float>> firsts;  // (first_ms, w_s) per session
};

struct ImageAccumulator {
  std::unordered_map<uint32_t, BlockAccumulator> blocks;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> edges;  // (from, to) -> sessions
};

uint32_t WeightedMedian(std::vector<std::pair<uint32_t, float>>& firsts) {
  std::sort(firsts.begin(), firsts.end());
  double total = 0;
  for (const auto& f : firsts) total += f.second;
  double acc = 0;
  for (const auto& f : firsts) {
    acc += f.second;
    if (acc >= total / 2) return f.first;
  }
  return firsts.empty() ? 0 : firsts.back().first;
}

uint32_t ClampMs(uint64_t t_us) { return static_cast<uint32_t>(std::min<uint64_t>(t_us / 1000, UINT32_MAX)); }

}  // namespace

double AgeDecay(int64_t start_ms, const BuildOptions& o) {
  const double age_days = std::max<double>(0, static_cast<double>(o.now_ms - start_ms) / kDayMs);
  return o.half_life_days > 0 ? std::exp2(-age_days / o.half_life_days) : 1.0;
}

double SessionWeight(int64_t start_ms, const BuildOptions& o) {
  const double decay = AgeDecay(start_ms, o);
  const int64_t target = o.target_ms != 0 ? o.target_ms : o.now_ms;
  int d = std::abs(HourOfDay(start_ms) - HourOfDay(target));
  d = std::min(d, 24 - d);  // circular distance, 0..12 hours
  const double hour_similarity = 1.0 - d / 12.0;
  const double week_similarity = IsWeekend(Weekday(start_ms)) == IsWeekend(Weekday(target)) ? 1.0 : 0.5;
  // Never zero: a session at the opposite hour still says something.
  return decay * (0.2 + 0.8 * hour_similarity * week_similarity);
}

Profile BuildProfile(const std::string& vm, const std::vector<SessionTrace>& sessions, const BuildOptions& o) {
  Profile p;
  p.vm = vm;
  p.built_ms = o.now_ms;
  p.target_ms = o.target_ms != 0 ? o.target_ms : o.now_ms;
  p.block_size = kProfileBlockSize;
  p.live_session = o.live_session;

  std::map<std::string, ImageAccumulator> images;
  double total_weight = 0, total_decay = 0;
  for (const SessionTrace& s : sessions) {
    const bool live = !o.live_session.empty() && s.id == o.live_session;
    const double w = SessionWeight(s.start_ms, o);
    const double decay = AgeDecay(s.start_ms, o);
    if (live) {
      for (const AccessRecord& r : s.records) p.live_elapsed_ms = std::max<uint64_t>(p.live_elapsed_ms, r.t_us / 1000);
    } else {
      ++p.sessions;
      if (s.kind == SessionKind::kStart) ++p.boot_sessions;
      total_weight += w;
      total_decay += decay;
    }
    // Per image: blocks seen in this session (first read time) and the
    // recent first reads for successor edges.
    std::map<std::string, std::unordered_map<uint32_t, uint32_t>> seen;
    std::map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> recent;  // (block, first_ms)
    std::map<std::string, std::unordered_map<uint32_t, uint32_t>> reads;
    for (const AccessRecord& r : s.records) {
      if (r.op != AccessOp::kRead || r.length == 0) continue;
      ImageAccumulator& img = images[r.image];
      const uint32_t t_ms = ClampMs(r.t_us);
      const int64_t wall = s.start_ms + static_cast<int64_t>(t_ms);
      const uint64_t first = r.offset / kProfileBlockSize;
      const uint64_t last = (r.offset + r.length - 1) / kProfileBlockSize;
      if (last >= UINT32_MAX) continue;
      if (!live) {
        p.hour_histogram[HourOfDay(wall)] += 1;
        p.weekday_histogram[Weekday(wall)] += 1;
      }
      for (uint64_t b64 = first; b64 <= last; ++b64) {
        const auto b = static_cast<uint32_t>(b64);
        BlockAccumulator& acc = img.blocks[b];
        if (live) {
          acc.live_last_ms = std::max<int64_t>(acc.live_last_ms, t_ms);
          continue;
        }
        acc.hours |= uint32_t{1} << HourOfDay(wall);
        acc.weekdays |= static_cast<uint8_t>(1u << Weekday(wall));
        reads[r.image][b] += 1;
        auto [it, inserted] = seen[r.image].emplace(b, t_ms);
        if (!inserted) continue;
        acc.weight += w;
        acc.firsts.emplace_back(t_ms, static_cast<float>(w));
        if (s.kind == SessionKind::kStart && t_ms <= o.boot_window_ms) ++acc.boot_starts;
        auto& window = recent[r.image];
        for (const auto& [pred, pred_ms] : window) {
          if (pred != b && t_ms - pred_ms <= o.successor_window_ms) img.edges[{pred, b}] += 1;
        }
        window.emplace_back(b, t_ms);
        if (window.size() > o.successor_lookback) window.erase(window.begin());
      }
    }
    for (auto& [name, counts] : reads) {
      ImageAccumulator& img = images[name];
      for (const auto& [b, n] : counts) img.blocks[b].decayed_reads += decay * n;
    }
  }

  for (auto& [name, img] : images) {
    ImageProfile ip;
    ip.name = name;
    ip.blocks.reserve(img.blocks.size());
    for (auto& [b, acc] : img.blocks) {
      BlockProfile bp;
      bp.block = b;
      bp.support = total_weight > 0 ? static_cast<float>(std::min(1.0, acc.weight / total_weight)) : 0.f;
      bp.score = bp.support;
      bp.boot_support = p.boot_sessions > 0 ? static_cast<float>(acc.boot_starts) / p.boot_sessions : 0.f;
      bp.decayed_reads = total_decay > 0 ? static_cast<float>(acc.decayed_reads / total_decay) : 0.f;
      bp.first_ms = WeightedMedian(acc.firsts);
      bp.hours = acc.hours;
      bp.weekdays = acc.weekdays;
      bp.live_last_ms = acc.live_last_ms;
      ip.blocks.push_back(bp);
    }
    std::sort(ip.blocks.begin(), ip.blocks.end(), [](const auto& a, const auto& b) { return a.block < b.block; });
    // Top-k successors per block, most frequent first (ties: nearer block).
    std::vector<SuccessorEdge> edges;
    edges.reserve(img.edges.size());
    for (const auto& [key, count] : img.edges) edges.push_back({key.first, key.second, count});
    std::sort(edges.begin(), edges.end(), [](const SuccessorEdge& a, const SuccessorEdge& b) {
      if (a.from != b.from) return a.from < b.from;
      if (a.count != b.count) return a.count > b.count;
      return a.to < b.to;
    });
    uint32_t kept_for = UINT32_MAX, kept = 0;
    for (const SuccessorEdge& e : edges) {
      if (e.from != kept_for) {
        kept_for = e.from;
        kept = 0;
      }
      if (kept++ < o.successor_top_k) ip.successors.push_back(e);
    }
    p.images.push_back(std::move(ip));
  }
  return p;
}

}  // namespace affinity::profile
