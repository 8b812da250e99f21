#include "fs/prefetch_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "profile/profile_codec.h"

namespace affinity::fs {
namespace {

using profile::PrefetchClass;

// One prefetch request covers at most 256 KiB, and prefetch keeps at most
// InflightByteCap() on the wire: a demand reply queued behind them on the
// link waits for that much, never for the plan.
constexpr uint32_t kMaxRunChunkBytes = 256 << 10;
constexpr uint64_t kMinInflightBytes = 1 << 20;
constexpr size_t kMaxSuccessorQueue = 1024;

uint64_t Key(uint32_t image, uint32_t chunk) { return (uint64_t{image} << 32) | chunk; }

fetcher::Priority PriorityOf(PrefetchClass c) {
  switch (c) {
    case PrefetchClass::kCritical: return fetcher::Priority::kCritical;
    case PrefetchClass::kEarly: return fetcher::Priority::kEarly;
    case PrefetchClass::kSuccessor: return fetcher::Priority::kSuccessor;
    case PrefetchClass::kBackground: return fetcher::Priority::kBackground;
  }
  return fetcher::Priority::kBackground;
}

profile::PolicyOptions PolicyFor(const PrefetchEngineOptions& o) {
  profile::PolicyOptions p;
  p.max_window = std::max<uint32_t>(1, o.max_window);
  p.initial_window = p.max_window;
  return p;
}

}  // namespace

PrefetchEngine::PrefetchEngine(VmCache* cache, PrefetchEngineOptions options)
    : cache_(cache), options_(options), policy_(PolicyFor(options)) {
  for (const auto& image : cache_->images()) images_.push_back(ImageState{image, -1, {}, {}, {}, {}, {}});
  policy_.SetLink({1.0, options_.link_bytes_per_ms});
  stats_.window = policy_.window();
}

PrefetchEngine::~PrefetchEngine() { Stop(); }

void PrefetchEngine::Start(Loader load) {
  {
    std::lock_guard lock(mu_);
    stats_.state = "loading";
  }
  thread_ = std::thread([this, load = std::move(load)] { Run(load); });
}

void PrefetchEngine::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t PrefetchEngine::ChunkBytes(uint32_t image, uint32_t chunk) const {
  const ImageCache& c = *images_[image].cache;
  const uint64_t off = uint64_t{chunk} * c.chunk_size();
  return std::min<uint64_t>(c.chunk_size(), c.record().size - std::min(c.record().size, off));
}

Status PrefetchEngine::LoadPlan(const std::string& encoded) {
  auto decoded = profile::DecodeProfile(encoded);
  if (!decoded.ok()) return decoded.status();
  auto prof = std::make_unique<profile::Profile>(std::move(decoded).value());
  if (prof->vm != cache_->options().vm) {
    return InvalidArgument("the profile is of VM '" + prof->vm + "', not '" + cache_->options().vm + "'");
  }
  std::vector<int> to_cache(prof->images.size(), -1);
  std::lock_guard lock(mu_);
  for (size_t p = 0; p < prof->images.size(); ++p) {
    for (size_t i = 0; i < images_.size(); ++i) {
      if (images_[i].cache->record().name == prof->images[p].name) {
        to_cache[p] = static_cast<int>(i);
        images_[i].profile_index = static_cast<int>(p);
      }
    }
  }
  const auto now = Clock::now();
  std::vector<Roaring> profiled(images_.size());
  for (const profile::PlanItem& item : profile::BuildPrefetchPlan(*prof, options_.plan)) {
    const int image = to_cache[item.image];
    if (image < 0) continue;  // an image this mount does not have
    ImageState& st = images_[image];
    const uint64_t offset = uint64_t{item.block} * prof->block_size;
    if (offset >= st.cache->record().size) continue;
    const auto chunk = static_cast<uint32_t>(offset / st.cache->chunk_size());
    profiled[image].add(chunk);
    if (st.queued.contains(chunk)) continue;  // a bigger chunk holds several blocks: the first (most urgent) wins
    if (st.cache->IsPresent(chunk)) continue;
    st.queued.add(chunk);
    Item it{static_cast<uint32_t>(image), chunk, item.cls, item.probability,
            now + std::chrono::milliseconds(item.due_ms)};
    queues_[static_cast<size_t>(item.cls)].push_back(it);
    meta_[Key(it.image, chunk)] = it;
    stats_.planned_bytes += ChunkBytes(it.image, chunk);
  }
  // Read-ahead stays inside the profile's chunks for streams it knows (over-fetch).
  for (size_t i = 0; i < images_.size(); ++i) {
    if (images_[i].profile_index >= 0) images_[i].cache->SetProfiledChunks(std::move(profiled[i]));
  }
  successors_ = std::make_unique<profile::SuccessorIndex>(*prof);
  profile_ = std::move(prof);
  stats_.profile_id = profile::ProfileId(encoded);
  stats_.state = "running";
  return Status::Ok();
}

bool PrefetchEngine::NextRunLocked(Item& first, uint32_t& last_chunk) {
  for (size_t c = 0; c < queues_.size(); ++c) {
    auto& q = queues_[c];
    if (c == static_cast<size_t>(PrefetchClass::kBackground) && options_.background_bytes_per_s == 0) continue;
    if (c == static_cast<size_t>(PrefetchClass::kSuccessor) && !options_.adaptive) continue;
    while (!q.empty()) {
      Item it = q.front();
      q.pop_front();
      ImageState& st = images_[it.image];
      if (!st.queued.contains(it.chunk)) continue;  // read meanwhile, or already issued
      st.queued.remove(it.chunk);
      if (st.cache->IsPresent(it.chunk) || st.cache->IsInFlight(it.chunk)) continue;
      const uint64_t bytes = ChunkBytes(it.image, it.chunk);
      if (options_.adaptive && !policy_.Worth(it.cls, it.probability, bytes)) {
        ++stats_.skipped;
        continue;
      }
      if (it.cls == PrefetchClass::kBackground) {
        if (background_tokens_ < static_cast<double>(bytes)) {
          st.queued.add(it.chunk);
          q.push_front(it);
          break;  // wait for tokens
        }
        background_tokens_ -= static_cast<double>(bytes);
      }
      // Merge the adjacent chunks that follow in this class's queue.
      first = it;
      last_chunk = it.chunk;
      const uint32_t max_chunks = std::max<uint32_t>(1, kMaxRunChunkBytes / st.cache->chunk_size());
      while (!q.empty() && q.front().image == it.image && q.front().chunk == last_chunk + 1 &&
             last_chunk - it.chunk + 1 < max_chunks && st.queued.contains(q.front().chunk) &&
             !st.cache->IsPresent(q.front().chunk)) {
        st.queued.remove(q.front().chunk);
        ++last_chunk;
        q.pop_front();
      }
      return true;
    }
  }
  return false;
}

bool PrefetchEngine::CriticalQueuedLocked() {
  auto& q = queues_[static_cast<size_t>(PrefetchClass::kCritical)];
  // Entries read or issued meanwhile stay in the deque until they reach its
  // front; drop those so a drained class does not look queued.
  while (!q.empty() && !images_[q.front().image].queued.contains(q.front().chunk)) q.pop_front();
  return !q.empty();
}

uint64_t PrefetchEngine::InflightByteCap() const {
  // Twice the bandwidth-delay product keeps the link busy; more would only
  // sit in front of demand replies.
  const double bdp = options_.link_bytes_per_ms * std::max(0.0, rtt_ms_);
  return std::max<uint64_t>(kMinInflightBytes, static_cast<uint64_t>(2 * bdp));
}

void PrefetchEngine::IssueLocked(std::unique_lock<std::mutex>& lock, const Item& item, uint32_t last_chunk) {
  ImageState& st = images_[item.image];
  st.issued.addRange(item.chunk, uint64_t{last_chunk} + 1);
  for (uint32_t c = item.chunk; c <= last_chunk; ++c) inflight_bytes_ += static_cast<int64_t>(ChunkBytes(item.image, c));
  ++inflight_;  // held until we know how many runs started (their callbacks may come first)
  std::shared_ptr<ImageCache> cache = st.cache;
  const uint32_t image = item.image;
  lock.unlock();
  const auto sent = Clock::now();
  const auto runs = cache->Prefetch(item.chunk, last_chunk, PriorityOf(item.cls), sent + options_.fetch_timeout,
                                    [this, image, sent](uint32_t a, uint32_t b, const Status& s) {
                                      OnFetched(image, a, b, s, Clock::now() - sent);
                                    });
  lock.lock();
  // Settle the provisional accounting with what really started (chunks
  // present or in flight meanwhile split the range into runs, or leave
  // nothing). Runs that already landed have settled their own part in
  // OnFetched; here only the chunks no run covers are taken back.
  inflight_ += static_cast<int64_t>(runs.size()) - 1;
  ImageState& now = images_[image];
  size_t r = 0;
  for (uint32_t c = item.chunk; c <= last_chunk; ++c) {
    while (r < runs.size() && runs[r].second < c) ++r;
    if (r < runs.size() && runs[r].first <= c) continue;  // in a run
    now.issued.remove(c);
    inflight_bytes_ -= static_cast<int64_t>(ChunkBytes(image, c));
  }
}

void PrefetchEngine::OnFetched(uint32_t image, uint32_t first, uint32_t last, const Status& status,
                               Clock::duration took) {
  {
    std::lock_guard lock(mu_);
    ImageState& st = images_[image];
    --inflight_;
    for (uint32_t c = first; c <= last; ++c) inflight_bytes_ -= static_cast<int64_t>(ChunkBytes(image, c));
    if (status.ok()) {
      // The round trip, as the cost model sees it: the reply's time minus
      // its bytes' transfer time at the assumed link rate.
      uint64_t bytes = 0;
      for (uint32_t c = first; c <= last; ++c) bytes += ChunkBytes(image, c);
      const double ms = std::chrono::duration<double, std::milli>(took).count() -
                        static_cast<double>(bytes) / options_.link_bytes_per_ms;
      const double sample = std::max(0.05, ms);
      rtt_ms_ = rtt_ms_ < 0 ? sample : 0.8 * rtt_ms_ + 0.2 * sample;
      policy_.SetLink({rtt_ms_, options_.link_bytes_per_ms});
      stats_.link_rtt_ms = rtt_ms_;
    }
    for (uint32_t c = first; c <= last; ++c) {
      st.issued.remove(c);
      if (!status.ok()) continue;
      st.prefetched.add(c);
      stats_.done_bytes += ChunkBytes(image, c);
      if (st.touched.contains(c)) {  // read while in flight: used, but late
        st.used.add(c);
        stats_.used_bytes += ChunkBytes(image, c);
      }
      auto it = meta_.find(Key(image, c));
      if (it != meta_.end()) {
        const auto when = std::max(it->second.due, Clock::now()) + options_.maturity_grace;
        maturing_.emplace(when, Matured{image, c, it->second.cls, it->second.probability});
      }
    }
  }
  cv_.notify_all();
}

void PrefetchEngine::MatureLocked(Clock::time_point now) {
  while (!maturing_.empty() && maturing_.begin()->first <= now) {
    const Matured m = maturing_.begin()->second;
    maturing_.erase(maturing_.begin());
    const bool used = images_[m.image].used.contains(m.chunk);
    if (!used) stats_.wasted_bytes += ChunkBytes(m.image, m.chunk);
    policy_.OnMatured(m.cls, m.probability, used);
  }
}

void PrefetchEngine::QueueSuccessorsLocked(uint32_t image, uint32_t chunk) {
  ImageState& st = images_[image];
  if (!options_.adaptive || successors_ == nullptr || st.profile_index < 0) return;
  const uint32_t chunk_size = st.cache->chunk_size();
  const uint32_t block_size = profile_->block_size;
  const uint64_t first_block = uint64_t{chunk} * chunk_size / block_size;
  const uint64_t last_block = (uint64_t{chunk} * chunk_size + chunk_size - 1) / block_size;
  auto& q = queues_[static_cast<size_t>(PrefetchClass::kSuccessor)];
  const auto now = Clock::now();
  for (uint64_t b = first_block; b <= last_block && b <= UINT32_MAX; ++b) {
    for (const profile::SuccessorEdge& e : successors_->Successors(st.profile_index, static_cast<uint32_t>(b))) {
      const uint64_t offset = uint64_t{e.to} * block_size;
      if (offset >= st.cache->record().size) continue;
      const auto next = static_cast<uint32_t>(offset / chunk_size);
      if (next == chunk || st.queued.contains(next) || st.issued.contains(next) || st.touched.contains(next)) continue;
      Item it{image, next, PrefetchClass::kSuccessor, static_cast<float>(successors_->Probability(e)), now};
      st.queued.add(next);
      meta_[Key(image, next)] = it;
      q.push_front(it);  // the newest reads' successors are the most urgent
    }
  }
  while (q.size() > kMaxSuccessorQueue) {
    images_[q.back().image].queued.remove(q.back().chunk);
    q.pop_back();
  }
}

void PrefetchEngine::OnRead(uint32_t image, uint64_t offset, uint64_t length) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (image >= images_.size() || length == 0) return;
    ImageState& st = images_[image];
    const ImageCache& c = *st.cache;
    if (offset >= c.record().size) return;
    const uint64_t end = std::min(c.record().size, offset + length);
    const auto first = static_cast<uint32_t>(offset / c.chunk_size());
    const auto last = static_cast<uint32_t>((end - 1) / c.chunk_size());
    for (uint32_t k = first; k <= last; ++k) {
      const bool present = c.IsPresent(k);
      if (!st.touched.contains(k)) {
        st.touched.add(k);
        ++stats_.first_reads;
        if (present) ++stats_.first_read_hits;
        QueueSuccessorsLocked(image, k);
        wake = true;
      }
      if (st.prefetched.contains(k) && !st.used.contains(k)) {
        st.used.add(k);
        stats_.used_bytes += ChunkBytes(image, k);
      }
      if (present) continue;
      if (st.queued.contains(k)) {
        // The plan had it, but the VM came first: demand fetches it now.
        st.queued.remove(k);
        ++stats_.demand_misses_while_queued;
        policy_.OnLateDemandMiss();
      } else if (!st.issued.contains(k) && !c.IsInFlight(k)) {
        ++unplanned_misses_;
      }
    }
  }
  if (wake) cv_.notify_all();
}

void PrefetchEngine::Run(Loader load) {
  load([this](Result<std::string> r) {
    {
      std::lock_guard lock(mu_);
      loaded_.emplace(std::move(r));
    }
    cv_.notify_all();
  });
  Result<std::string> encoded = Cancelled("unmounted before the profile arrived");
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stop_ || loaded_.has_value(); });
    if (stop_) return;
    encoded = std::move(*loaded_);
  }
  Status s = encoded.ok() ? LoadPlan(*encoded) : encoded.status();
  if (!s.ok()) {
    spdlog::warn("prefetch: no profile ({}); serving on demand only", s.ToString());
    std::lock_guard lock(mu_);
    stats_.state = "error";
    stats_.error = s.ToString();
    return;
  }
  {
    std::lock_guard lock(mu_);
    spdlog::info("prefetch: profile {} ({} sessions), {} bytes planned", stats_.profile_id, profile_->sessions,
                 stats_.planned_bytes);
  }
  auto last_tick = Clock::now();
  std::unique_lock lock(mu_);
  while (!stop_) {
    const auto now = Clock::now();
    if (now - last_tick >= options_.tick) {
      const double seconds = std::chrono::duration<double>(now - last_tick).count();
      background_tokens_ = std::min<double>(background_tokens_ + seconds * options_.background_bytes_per_s,
                                            std::max<double>(kMaxRunChunkBytes, options_.background_bytes_per_s));
      if (options_.adaptive) {
        // AIMD: the VM missing what the plan did not have means demand needs
        // the link; a quiet tick gives prefetch one more request. Not while
        // critical blocks are still queued: they are what the VM reads next
        // (its boot, the seconds after a cut-over), so yielding the link to
        // one unplanned miss only turns the next planned read into a miss
        // too (a back-to-back boot at 2 ms: 0.29 -> 0.25 s).
        if (unplanned_misses_ > 0) {
          if (!CriticalQueuedLocked()) {
            policy_.OnDemandMissRunning();
            ++stats_.yields;
          }
        } else {
          policy_.OnLateDemandMiss();
        }
        demand_busy_ = 0.9 * demand_busy_ + 0.1 * (unplanned_misses_ > 0 ? 1.0 : 0.0);
        policy_.SetDemandBusy(demand_busy_);
        stats_.demand_busy = demand_busy_;
        const CacheBudget& budget = cache_->budget();
        if (budget.limit() > 0) policy_.SetCacheFree(budget.limit() - std::min(budget.limit(), budget.used()) + 1);
      }
      unplanned_misses_ = 0;
      last_tick = now;
      MatureLocked(now);
    }
    const uint32_t window = options_.adaptive ? policy_.window() : options_.max_window;
    stats_.window = window;
    Item item{};
    uint32_t last = 0;
    while (inflight_ < static_cast<int64_t>(window) && inflight_bytes_ < static_cast<int64_t>(InflightByteCap()) &&
           NextRunLocked(item, last)) {
      IssueLocked(lock, item, last);
    }
    stats_.inflight = static_cast<uint64_t>(std::max<int64_t>(0, inflight_));
    uint64_t queued = 0;
    for (const ImageState& st : images_) queued += st.queued.cardinality();
    stats_.queued = queued;
    stats_.state = queued == 0 && inflight_ <= 0 ? "idle" : "running";
    cv_.wait_for(lock, options_.tick);
  }
}

PrefetchStats PrefetchEngine::Stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace affinity::fs
