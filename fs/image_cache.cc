#include "fs/image_cache.h"
#include "fs/image_cache_flight.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace affinity::fs {
namespace {
// A demand run never exceeds this (the kernel asks for at most max_read).
constexpr uint64_t kMaxDemandRunBytes = 8ull << 20;
// Read-ahead is split into runs this size so they spread over connections.
constexpr uint64_t kMaxReadaheadRunBytes = 2ull << 20;
// Reads within this distance of the stream's expected next offset count as
// sequential: the kernel issues read-ahead from several threads, slightly out of order.
constexpr uint64_t kSequentialSlackBytes = 4ull << 20;

uint64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}
}  // namespace


// ---------------------------------------------------------------- ReadLease

ReadLease::~ReadLease() { Release(); }

ReadLease::ReadLease(ReadLease&& other) noexcept { *this = std::move(other); }

ReadLease& ReadLease::operator=(ReadLease&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = other.owner_;
    first_chunk_ = other.first_chunk_;
    last_chunk_ = other.last_chunk_;
    pinned_ = other.pinned_;
    fd_ = other.fd_;
    offset_ = other.offset_;
    length_ = other.length_;
    memory_ = std::move(other.memory_);
    other.pinned_ = false;
    other.owner_ = nullptr;
  }
  return *this;
}

void ReadLease::Release() {
  if (pinned_ && owner_ != nullptr) owner_->Unpin(first_chunk_, last_chunk_);
  pinned_ = false;
}

// --------------------------------------------------------------- ImageCache

ImageCache::ImageCache(ImageRecord record, std::shared_ptr<DataFile> file, ChunkIndex* index, ChunkSource* source,
                       CacheBudget* budget, AccessState* access)
    : record_(std::move(record)),
      chunk_count_(static_cast<uint32_t>((record_.size + record_.chunk_size - 1) / record_.chunk_size)),
      file_(std::move(file)),
      index_(index),
      source_(source),
      budget_(budget),
      access_(access),
      last_access_(new std::atomic<uint64_t>[chunk_count_ == 0 ? 1 : chunk_count_]()) {}

ImageCache::~ImageCache() {
  budget_->Sub(cached_bytes());
  budget_->SubDirty(dirty_bytes());
}

uint64_t ImageCache::ChunkLength(uint32_t idx) const {
  uint64_t off = ChunkOffset(idx);
  return std::min<uint64_t>(record_.chunk_size, record_.size - off);
}

uint64_t ImageCache::chunks_present() const {
  std::lock_guard lock(mu_);
  return present_.cardinality();
}

void ImageCache::LoadPresent(const std::vector<ChunkRecord>& chunks) {
  uint64_t bytes = 0, dirty = 0;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (const ChunkRecord& c : chunks) {
      if (c.idx >= chunk_count_ || present_.contains(c.idx)) continue;
      present_.add(c.idx);
      if (c.dirty) {
        // Written before a restart and not yet written back: all of it goes
        // (the sub-block mask lived in RAM only). Sequence 0: any flush waits for it.
        dirty_[c.idx] = DirtyChunk{0, 0, ~uint64_t{0}, false, false, now};
        dirty += ChunkLength(c.idx);
      } else {
        unverified_.add(c.idx);
        unverified_digest_[c.idx] = c.digest;
      }
      if (!c.migration.empty()) by_migration_[c.migration].add(c.idx);
      bytes += ChunkLength(c.idx);
    }
  }
  cached_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  budget_->Add(bytes);
  dirty_bytes_.fetch_add(dirty, std::memory_order_relaxed);
  budget_->AddDirty(dirty);
}

void ImageCache::PlanRunsLocked(uint32_t first, uint32_t last, ChunkOrigin origin, uint64_t max_run_bytes,
                                std::vector<std::shared_ptr<Flight>>& started) {
  std::shared_ptr<Flight> run;
  for (uint64_t i = first; i <= last; ++i) {
    auto idx = static_cast<uint32_t>(i);
    bool absent = !present_.contains(idx) && inflight_.find(idx) == inflight_.end();
    if (!absent) {
      run.reset();
      continue;
    }
    if (run && run->range.length + ChunkLength(idx) > max_run_bytes) run.reset();
    if (!run) {
      run = std::make_shared<Flight>();
      run->first = idx;
      run->origin = origin;
      run->fetch = true;
      run->range.offset = ChunkOffset(idx);
      started.push_back(run);
    }
    run->count++;
    run->range.length += ChunkLength(idx);
    inflight_[idx] = run;
  }
}

void ImageCache::StartFlights(const std::vector<std::shared_ptr<Flight>>& flights, fetcher::Priority priority,
                              Deadline deadline) {
  const std::string tag = access_ != nullptr ? access_->tag() : std::string();
  for (const auto& flight : flights) {
    flight->migration = tag;
    stats_.inflight_fetches.fetch_add(1, std::memory_order_relaxed);
    ImageStats::Add(stats_.fetch_requests, 1);
    std::weak_ptr<ImageCache> weak = weak_from_this();
    source_->Fetch(record_.name, flight->range, priority, deadline,
                   [weak, flight](Result<std::vector<uint8_t>> result) {
                     if (auto self = weak.lock()) {
                       self->OnFetched(flight, std::move(result));
                     } else {
                       std::lock_guard lock(flight->mu);
                       flight->done = true;
                       flight->status = Cancelled("image cache closed");
                       flight->cv.notify_all();
                     }
                   });
  }
}

void ImageCache::OnFetched(const std::shared_ptr<Flight>& flight, Result<std::vector<uint8_t>> result) {
  stats_.inflight_fetches.fetch_sub(1, std::memory_order_relaxed);
  Status status = result.status();
  std::shared_ptr<std::vector<uint8_t>> unstored;
  std::vector<ChunkRecord> stored;
  if (status.ok() && result->size() != flight->range.length) {
    status = Corruption("storage host sent " + std::to_string(result->size()) + " bytes for a range of " +
                        std::to_string(flight->range.length));
  }
  // The chunks this fetch still owns: a write may have taken some over
  // (replacing them whole), and their bytes are the write's now.
  std::vector<bool> owned(flight->count);
  {
    std::lock_guard lock(mu_);
    flight->storing = true;
    for (uint32_t k = 0; k < flight->count; ++k) {
      auto it = inflight_.find(flight->first + k);
      owned[k] = it != inflight_.end() && it->second == flight;
    }
  }
  if (status.ok()) {
    const std::vector<uint8_t>& bytes = *result;
    ImageStats::Add(flight->origin == ChunkOrigin::kDemand     ? stats_.bytes_demand
                    : flight->origin == ChunkOrigin::kPrefetch ? stats_.bytes_prefetch
                                                               : stats_.bytes_readahead,
                    bytes.size());
    uint64_t pos = 0;
    for (uint32_t k = 0; k < flight->count; ++k) {
      uint32_t idx = flight->first + k;
      uint64_t len = ChunkLength(idx);
      std::span<const uint8_t> slice(bytes.data() + pos, len);
      if (!owned[k]) {
        pos += len;
        continue;
      }
      Status w = file_->WriteAll(ChunkOffset(idx), slice);
      if (!w.ok()) {
        ImageStats::Add(stats_.store_errors, 1);
        spdlog::warn("{}: cannot store chunk {} in the cache ({}); serving it from memory", record_.name, idx,
                     w.ToString());
        unstored = std::make_shared<std::vector<uint8_t>>(std::move(result).value());
        break;
      }
      stored.push_back(ChunkRecord{idx, ComputeChunkDigest(slice), flight->origin, flight->migration});
      pos += len;
    }
  } else {
    ImageStats::Add(stats_.fetch_errors, 1);
    spdlog::warn("{}: {}", record_.name, status.ToString());
  }

  uint64_t added = 0;
  bool discard = false;
  {
    std::lock_guard lock(mu_);
    for (uint32_t k = 0; k < flight->count; ++k) {
      auto it = inflight_.find(flight->first + k);
      if (it != inflight_.end() && it->second == flight) inflight_.erase(it);
    }
    // Checked under mu_, which a purge also takes: either the purge sees these
    // chunks present (and drops them) or we see the tag purged (and keep none).
    discard = access_ != nullptr && access_->IsPurged(flight->migration);
    for (const ChunkRecord& c : discard ? std::vector<ChunkRecord>{} : stored) {
      present_.add(c.idx);
      added += ChunkLength(c.idx);
      for (auto& [tag, chunks] : by_migration_) chunks.remove(c.idx);
      if (!c.migration.empty()) by_migration_[c.migration].add(c.idx);
      // Under mu_: a write into the chunk, from now on possible, queues its
      // dirty row after this one (never hidden by it).
      index_->EnqueuePut(file_, record_.name, c);
    }
  }
  if (discard) {
    for (const ChunkRecord& c : stored) (void)file_->PunchHole(ChunkOffset(c.idx), ChunkLength(c.idx));
    stored.clear();
    unstored.reset();
    status = PermissionDenied(record_.name + ": bytes fetched under migration " + flight->migration +
                              " arrived after it was aborted; discarded");
  }
  if (added > 0) {
    cached_bytes_.fetch_add(added, std::memory_order_relaxed);
    budget_->Add(added);
  }
  {
    std::lock_guard lock(flight->mu);
    flight->done = true;
    flight->status = status;
    flight->unstored = std::move(unstored);
    flight->cv.notify_all();
  }
  if (flight->on_done) flight->on_done(status);
}

void ImageCache::VerifyChunk(uint32_t idx) {
  // Caller holds a pin on idx, so the bytes cannot be punched out meanwhile.
  ChunkDigest expected{};
  {
    std::lock_guard lock(mu_);
    auto it = unverified_digest_.find(idx);
    if (it == unverified_digest_.end()) return;  // someone else verified it
    expected = it->second;
  }
  std::vector<uint8_t> buf(ChunkLength(idx));
  Status s = file_->ReadAll(ChunkOffset(idx), buf);
  bool good = s.ok() && ComputeChunkDigest(buf) == expected;
  bool dropped = false;
  {
    std::lock_guard lock(mu_);
    if (unverified_digest_.erase(idx) == 0) return;
    unverified_.remove(idx);
    if (!good) {
      present_.remove(idx);
      dropped = true;
      // Under mu_: a write that refills the chunk queues its row after this.
      index_->EnqueueDelete(record_.name, idx);
    }
  }
  if (dropped) {
    ImageStats::Add(stats_.corrupt_chunks, 1);
    spdlog::error("{}: cached chunk {} failed its digest check ({}); dropped, fetching it again", record_.name, idx,
                  s.ok() ? "content changed on disk" : s.ToString());
    uint64_t len = ChunkLength(idx);
    cached_bytes_.fetch_sub(len, std::memory_order_relaxed);
    budget_->Sub(len);
    // No hole punched here: a refetch may already be writing this chunk, and
    // its bytes simply overwrite the bad ones.
  }
}

void ImageCache::Unpin(uint32_t first, uint32_t last) {
  std::lock_guard lock(mu_);
  for (uint64_t i = first; i <= last; ++i) {
    auto it = pins_.find(static_cast<uint32_t>(i));
    if (it != pins_.end() && --it->second == 0) pins_.erase(it);
  }
}

Result<ReadLease> ImageCache::Acquire(uint64_t offset, uint64_t length, Deadline deadline) {
  if (access_ != nullptr) {
    Status allowed = access_->ReadPermission();
    if (!allowed.ok()) return allowed;
  }
  ReadLease lease;
  lease.owner_ = this;
  lease.fd_ = file_->fd();
  lease.offset_ = offset;
  if (offset >= record_.size || length == 0) return lease;  // EOF: empty reply
  length = std::min(length, record_.size - offset);
  lease.length_ = length;
  auto first = static_cast<uint32_t>(offset / record_.chunk_size);
  auto last = static_cast<uint32_t>((offset + length - 1) / record_.chunk_size);
  auto t0 = std::chrono::steady_clock::now();
  bool missed = false;

  for (;;) {
    std::vector<std::shared_ptr<Flight>> waits;
    std::vector<std::shared_ptr<Flight>> started;
    std::vector<uint32_t> to_verify;
    {
      std::lock_guard lock(mu_);
      PlanRunsLocked(first, last, ChunkOrigin::kDemand, kMaxDemandRunBytes, started);
      for (uint64_t i = first; i <= last; ++i) {
        auto idx = static_cast<uint32_t>(i);
        auto it = inflight_.find(idx);
        if (it != inflight_.end()) {
          if (waits.empty() || waits.back() != it->second) waits.push_back(it->second);
        } else if (unverified_.contains(idx)) {
          to_verify.push_back(idx);
          ++pins_[idx];
        }
      }
      if (waits.empty() && to_verify.empty()) {
        for (uint64_t i = first; i <= last; ++i) ++pins_[static_cast<uint32_t>(i)];
        uint64_t tick = budget_->Tick();
        for (uint64_t i = first; i <= last; ++i) last_access_[i].store(tick, std::memory_order_relaxed);
        lease.first_chunk_ = first;
        lease.last_chunk_ = last;
        lease.pinned_ = true;
        break;
      }
    }
    for (uint32_t idx : to_verify) {
      VerifyChunk(idx);
      Unpin(idx, idx);
    }
    if (waits.empty()) continue;  // verified: look again (a dropped chunk gets fetched)

    missed = true;
    StartFlights(started, fetcher::Priority::kDemand, deadline);
    bool any_unstored = false;
    for (const auto& flight : waits) {
      std::unique_lock lock(flight->mu);
      if (!flight->cv.wait_until(lock, deadline, [&] { return flight->done; })) {
        ImageStats::Add(stats_.misses, 1);
        return Timeout(record_.name + ": no reply from the storage host for bytes " +
                       std::to_string(flight->range.offset) + "+" + std::to_string(flight->range.length) +
                       " before the --timeout deadline");
      }
      if (!flight->status.ok()) {
        ImageStats::Add(stats_.misses, 1);
        return flight->status;
      }
      any_unstored = any_unstored || flight->unstored != nullptr;
    }
    if (any_unstored) {
      auto served = ServeFromFlights(offset, length, waits);
      if (served.ok()) {
        ImageStats::Add(stats_.misses, 1);
        ImageStats::Add(stats_.bytes_after_miss, length);
        stats_.miss_latency_us.Record(MicrosSince(t0));
        return served;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ImageStats::Add(stats_.misses, 1);
      return Timeout(record_.name + ": read did not complete before the --timeout deadline");
    }
  }

  if (missed) {
    ImageStats::Add(stats_.misses, 1);
    ImageStats::Add(stats_.bytes_after_miss, length);
    stats_.miss_latency_us.Record(MicrosSince(t0));
  } else {
    ImageStats::Add(stats_.hits, 1);
    ImageStats::Add(stats_.bytes_from_cache, length);
  }
  return lease;
}

Result<ReadLease> ImageCache::ServeFromFlights(uint64_t offset, uint64_t length,
                                               const std::vector<std::shared_ptr<Flight>>& flights) {
  auto out = std::make_shared<std::vector<uint8_t>>(length);
  uint64_t end = offset + length;
  uint64_t pos = offset;
  while (pos < end) {
    bool copied = false;
    for (const auto& f : flights) {
      std::lock_guard lock(f->mu);
      if (f->unstored && pos >= f->range.offset && pos < f->range.end()) {
        uint64_t n = std::min(end, f->range.end()) - pos;
        std::memcpy(out->data() + (pos - offset), f->unstored->data() + (pos - f->range.offset), n);
        pos += n;
        copied = true;
        break;
      }
    }
    if (copied) continue;
    // Not in a refused buffer: it must be present in the cache file.
    auto idx = static_cast<uint32_t>(pos / record_.chunk_size);
    {
      std::lock_guard lock(mu_);
      if (!present_.contains(idx) || unverified_.contains(idx)) {
        return Unavailable(record_.name + ": cache disk full and chunk " + std::to_string(idx) + " not cached");
      }
      ++pins_[idx];
    }
    uint64_t n = std::min(end, ChunkOffset(idx) + ChunkLength(idx)) - pos;
    Status s = file_->ReadAll(pos, std::span(out->data() + (pos - offset), n));
    Unpin(idx, idx);
    if (!s.ok()) return s;
    pos += n;
  }
  ReadLease lease;
  lease.offset_ = offset;
  lease.length_ = length;
  lease.memory_ = std::move(out);
  return lease;
}

void ImageCache::NoteReadForReadahead(uint64_t offset, uint64_t length, Deadline deadline) {
  if (access_ != nullptr && access_->revoked()) return;
  uint64_t max_window = max_readahead_bytes_.load(std::memory_order_relaxed);
  if (max_window == 0 || offset >= record_.size) return;
  std::vector<std::shared_ptr<Flight>> started;
  {
    std::lock_guard lock(mu_);
    bool sequential = readahead_next_ != UINT64_MAX && offset + kSequentialSlackBytes >= readahead_next_ &&
                      offset <= readahead_next_ + kSequentialSlackBytes;
    uint64_t end = offset + length;
    if (!sequential) {
      readahead_stream_bytes_ = 0;
      readahead_next_ = end;
      readahead_planned_to_ = end;
      return;
    }
    // The window grows with the stream: a stream that has read N bytes gets
    // up to N bytes fetched ahead (at least two chunks, at most the maximum),
    // so a short sequential burst costs little and a long scan runs at full speed.
    readahead_stream_bytes_ += length;
    readahead_next_ = std::max(readahead_next_, end);
    uint64_t window = std::min<uint64_t>(max_window, std::max<uint64_t>(readahead_stream_bytes_, 2 * record_.chunk_size));
    uint64_t from = std::max(readahead_next_, readahead_planned_to_);
    uint64_t to = std::min(record_.size, readahead_next_ + window);
    if (from >= to) return;
    // Ahead in big pieces, not a read's worth at a time: once the stream has
    // a window ahead, top it up only when half of it (up to one run) is used,
    // so each request carries up to kMaxReadaheadRunBytes (fewer requests,
    // more bytes per round trip).
    if (from > readahead_next_ && to - from < std::min(window / 2, kMaxReadaheadRunBytes)) return;
    readahead_planned_to_ = to;
    const auto first = static_cast<uint32_t>(from / record_.chunk_size);
    const auto last = static_cast<uint32_t>((to - 1) / record_.chunk_size);
    if (profiled_.contains(static_cast<uint32_t>(offset / record_.chunk_size))) {
      // A stream the profile knows: ahead only into the chunks it reads next.
      for (uint32_t i = first; i <= last; ++i) {
        if (!profiled_.contains(i)) continue;
        uint32_t j = i;
        while (j < last && profiled_.contains(j + 1)) ++j;
        PlanRunsLocked(i, j, ChunkOrigin::kReadahead, kMaxReadaheadRunBytes, started);
        i = j;
      }
    } else {
      PlanRunsLocked(first, last, ChunkOrigin::kReadahead, kMaxReadaheadRunBytes, started);
    }
  }
  StartFlights(started, fetcher::Priority::kEarly, deadline);
}

void ImageCache::SetProfiledChunks(Roaring chunks) {
  std::lock_guard lock(mu_);
  profiled_ = std::move(chunks);
}

std::vector<std::pair<uint32_t, uint32_t>> ImageCache::Prefetch(
    uint32_t first, uint32_t last, fetcher::Priority priority, Deadline deadline,
    const std::function<void(uint32_t, uint32_t, const Status&)>& done) {
  std::vector<std::pair<uint32_t, uint32_t>> runs;
  if (access_ != nullptr && access_->revoked()) return runs;
  if (first >= chunk_count_) return runs;
  last = std::min(last, chunk_count_ - 1);
  std::vector<std::shared_ptr<Flight>> started;
  {
    std::lock_guard lock(mu_);
    PlanRunsLocked(first, last, ChunkOrigin::kPrefetch, kMaxReadaheadRunBytes, started);
  }
  for (const auto& f : started) {
    runs.emplace_back(f->first, f->first + f->count - 1);
    f->on_done = [done, a = runs.back().first, b = runs.back().second](const Status& s) { done(a, b, s); };
  }
  StartFlights(started, priority, deadline);
  return runs;
}

bool ImageCache::IsPresent(uint32_t idx) const {
  std::lock_guard lock(mu_);
  return present_.contains(idx);
}

bool ImageCache::IsInFlight(uint32_t idx) const {
  std::lock_guard lock(mu_);
  return inflight_.count(idx) != 0;
}

void ImageCache::CollectEvictionCandidates(std::vector<EvictionCandidate>& out) {
  std::lock_guard lock(mu_);
  for (uint32_t idx : present_) {
    // Dirty chunks are never evicted, nor written-back ones the index still calls dirty.
    if (pins_.count(idx) != 0 || dirty_.count(idx) != 0 || !CleanRowDurableLocked(idx)) continue;
    out.push_back({last_access_[idx].load(std::memory_order_relaxed), this, idx});
  }
}

uint64_t ImageCache::TryEvict(uint32_t idx) { return DropIfIdle(idx, /*eviction=*/true); }

uint64_t ImageCache::DropIfIdle(uint32_t idx, bool eviction) {
  // While the hole is punched the chunk is "in flight" (an eviction flight):
  // a reader waits for it instead of refetching into the range being punched.
  auto evicting = std::make_shared<Flight>();
  evicting->first = idx;
  evicting->count = 1;
  {
    std::lock_guard lock(mu_);
    if (!present_.contains(idx) || pins_.count(idx) != 0 || inflight_.count(idx) != 0 || dirty_.count(idx) != 0 ||
        !CleanRowDurableLocked(idx)) {
      return 0;
    }
    present_.remove(idx);
    if (unverified_.contains(idx)) {
      unverified_.remove(idx);
      unverified_digest_.erase(idx);
    }
    inflight_[idx] = evicting;
  }
  uint64_t len = ChunkLength(idx);
  Status s = file_->PunchHole(ChunkOffset(idx), len);
  if (!s.ok()) spdlog::warn("{}: evicting chunk {}: {}", record_.name, idx, s.ToString());
  index_->EnqueueDelete(record_.name, idx);
  {
    std::lock_guard lock(mu_);
    auto it = inflight_.find(idx);
    if (it != inflight_.end() && it->second == evicting) inflight_.erase(it);
  }
  {
    std::lock_guard lock(evicting->mu);
    evicting->done = true;  // ok status: waiters look again and fetch
    evicting->cv.notify_all();
  }
  cached_bytes_.fetch_sub(len, std::memory_order_relaxed);
  budget_->Sub(len);
  if (eviction) ImageStats::Add(stats_.evicted_bytes, len);
  return len;
}

bool ImageCache::CleanRowDurableLocked(uint32_t idx) {
  auto it = clean_rows_.find(idx);
  if (it == clean_rows_.end()) return true;
  std::optional<Status> state = index_->CommitState(it->second.ticket);
  if (!state) return false;  // still queued
  if (!state->ok()) {
    // Its batch failed: the committed row still says dirty. Try again.
    it->second.ticket = index_->EnqueuePut(nullptr, record_.name, it->second.row);
    return false;
  }
  clean_rows_.erase(it);
  return true;
}

Status ImageCache::DropChunk(uint32_t idx, Deadline deadline) {
  for (;;) {
    if (DropIfIdle(idx, /*eviction=*/false) > 0) return Status::Ok();
    std::shared_ptr<Flight> fetching;
    uint64_t clean_row = 0;  // the ticket of a clean row to wait for
    {
      std::lock_guard lock(mu_);
      auto it = inflight_.find(idx);
      if (it != inflight_.end()) {
        fetching = it->second;
      } else if (!present_.contains(idx)) {
        return Status::Ok();  // not cached (any more)
      } else if (dirty_.count(idx) != 0) {
        // Written here after this host became the owner: the only copy of
        // those bytes until written back. Never dropped.
        spdlog::warn("{}: chunk {} is dirty (written here, not yet written back); keeping it", record_.name, idx);
        return Status::Ok();
      } else if (auto row = clean_rows_.find(idx); row != clean_rows_.end()) {
        clean_row = row->second.ticket;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Timeout(record_.name + ": chunk " + std::to_string(idx) + " stayed busy; it could not be dropped");
    }
    if (fetching) {
      std::unique_lock lock(fetching->mu);
      fetching->cv.wait_until(lock, deadline, [&] { return fetching->done; });
    } else if (clean_row != 0) {
      (void)index_->WaitCommitted(clean_row);  // a failed commit is queued again by DropIfIdle
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a reader holds a pin: replies are short
    }
  }
}

Status ImageCache::PurgeMigration(const std::string& migration, Deadline deadline) {
  Roaring chunks;
  {
    std::lock_guard lock(mu_);
    auto it = by_migration_.find(migration);
    if (it == by_migration_.end()) return Status::Ok();
    chunks = it->second;
  }
  uint64_t dropped = 0;
  for (uint32_t idx : chunks) {
    Status s = DropChunk(idx, deadline);
    if (!s.ok()) return s;
    ++dropped;
  }
  {
    std::lock_guard lock(mu_);
    auto it = by_migration_.find(migration);
    if (it != by_migration_.end()) {
      it->second -= chunks;
      if (it->second.isEmpty()) by_migration_.erase(it);
    }
  }
  spdlog::info("{}: purged {} chunks fetched under migration {}", record_.name, dropped, migration);
  return Status::Ok();
}

Status ImageCache::InvalidateRange(uint64_t offset, uint64_t length, Deadline deadline) {
  if (length == 0 || offset >= record_.size) return Status::Ok();
  const uint64_t end = std::min(record_.size, offset + length);
  for (uint64_t idx = offset / record_.chunk_size; idx * record_.chunk_size < end; ++idx) {
    Status s = DropChunk(static_cast<uint32_t>(idx), deadline);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace affinity::fs
