// ImageCache's write side (docs/writes.md): dirty chunks, local durability
// before the acknowledgement, and the bookkeeping of the write-back.
//
// Ordering that makes "clean" safe: a write bumps a chunk's sequence number
// only after its bytes are in the cache file, and the write-back notes the
// sequence *before* reading the bytes it PUTs. So if the sequence is
// unchanged when the PUT succeeds, the storage host has every byte of every
// write counted in it, and the chunk is clean; otherwise it stays dirty and
// goes again.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include "fs/image_cache.h"
#include "fs/image_cache_flight.h"

namespace affinity::fs {
namespace {
constexpr int kSubBlocks = 64;  // bits of DirtyChunk::mask
}  // namespace

uint64_t ImageCache::SubBlockMask(uint32_t idx, uint64_t offset, uint64_t length) const {
  const uint64_t sub = std::max<uint64_t>(1, record_.chunk_size / kSubBlocks);
  const uint64_t start = std::max(offset, ChunkOffset(idx));
  const uint64_t end = std::min(offset + length, ChunkOffset(idx) + ChunkLength(idx));
  const uint64_t first = (start - ChunkOffset(idx)) / sub;
  const uint64_t last = std::min<uint64_t>(kSubBlocks - 1, (end - 1 - ChunkOffset(idx)) / sub);
  uint64_t mask = 0;
  for (uint64_t b = first; b <= last; ++b) mask |= uint64_t{1} << b;
  return mask;
}

void ImageCache::MarkDirtyLocked(uint32_t idx, uint64_t seq, uint64_t mask, std::vector<uint32_t>& newly_dirty,
                                 uint64_t& dirty_added) {
  auto [it, inserted] = dirty_.try_emplace(idx);
  DirtyChunk& d = it->second;
  if (inserted) {
    d.unflushed_from = seq;
    d.since = std::chrono::steady_clock::now();
    dirty_added += ChunkLength(idx);
  }
  if (inserted || d.row_missing) {
    d.row_missing = false;
    newly_dirty.push_back(idx);  // its dirty row is (again) to be queued
  }
  d.seq = seq;
  d.mask |= mask;
  clean_rows_.erase(idx);  // the dirty row just queued (or still committed) supersedes it
  // Its bytes are ours now: no migration can purge them, no digest describes them.
  for (auto& [tag, chunks] : by_migration_) chunks.remove(idx);
  if (unverified_.contains(idx)) {
    unverified_.remove(idx);
    unverified_digest_.erase(idx);
  }
}

Status ImageCache::Write(uint64_t offset, std::span<const uint8_t> data, Deadline deadline) {
  if (access_ != nullptr) {
    Status allowed = access_->WritePermission();
    if (!allowed.ok()) return allowed;
  }
  if (data.empty()) return Status::Ok();
  if (offset >= record_.size || data.size() > record_.size - offset) {
    return OutOfRange(record_.name + ": a write of " + std::to_string(data.size()) + " bytes at " +
                      std::to_string(offset) + " ends past the image's fixed size " + std::to_string(record_.size));
  }
  const uint64_t end = offset + data.size();
  const auto first = static_cast<uint32_t>(offset / record_.chunk_size);
  const auto last = static_cast<uint32_t>((end - 1) / record_.chunk_size);
  auto covers = [&](uint32_t idx) { return offset <= ChunkOffset(idx) && end >= ChunkOffset(idx) + ChunkLength(idx); };

  // Room among the dirty bytes (the cache limit counts them and cannot evict them).
  uint64_t new_dirty = 0;
  {
    std::lock_guard lock(mu_);
    for (uint64_t i = first; i <= last; ++i) {
      if (dirty_.count(static_cast<uint32_t>(i)) == 0) new_dirty += ChunkLength(static_cast<uint32_t>(i));
    }
  }
  if (new_dirty > 0 && !budget_->WaitForDirtyRoom(new_dirty, deadline)) {
    return Timeout(record_.name + ": the cache is full of dirty data and the write-back did not make room before "
                                  "the --timeout deadline (is the storage host reachable?)");
  }

  // A partially written chunk must be present first: its other bytes come
  // from the storage host (the lease pins it until the write is done).
  std::vector<uint32_t> partial_chunks;
  if (!covers(first)) partial_chunks.push_back(first);
  if (last != first && !covers(last)) partial_chunks.push_back(last);
  std::vector<ReadLease> partial;
  for (uint32_t idx : partial_chunks) {
    auto lease = Acquire(ChunkOffset(idx), ChunkLength(idx), deadline);
    if (!lease.ok()) {
      return lease.status().WithContext(record_.name + ": reading the rest of chunk " + std::to_string(idx) +
                                        " before writing into it");
    }
    partial.push_back(std::move(lease).value());
  }

  // Fully overwritten chunks: pin the present ones; claim the absent ones
  // with a "write flight" so readers wait for our bytes instead of fetching
  // old ones that would land on top of them.
  auto claim = std::make_shared<Flight>();
  std::vector<uint32_t> claimed, pinned;
  for (;;) {
    std::vector<std::shared_ptr<Flight>> waits;
    {
      std::lock_guard lock(mu_);
      for (uint64_t i = first; i <= last; ++i) {
        auto idx = static_cast<uint32_t>(i);
        if (!covers(idx)) continue;  // pinned by a partial lease
        if (std::find(pinned.begin(), pinned.end(), idx) != pinned.end() ||
            std::find(claimed.begin(), claimed.end(), idx) != claimed.end()) {
          continue;
        }
        auto it = inflight_.find(idx);
        if (it != inflight_.end() && it->second->fetch && !it->second->storing) {
          // Being fetched: take it over rather than wait for bytes we replace
          // whole (through a storage outage that wait would outlast the
          // deadline); the fetch leaves it alone when it lands.
          it->second = claim;
          claimed.push_back(idx);
        } else if (it != inflight_.end()) {
          waits.push_back(it->second);
        } else if (present_.contains(idx)) {
          ++pins_[idx];
          pinned.push_back(idx);
        } else {
          inflight_[idx] = claim;
          claimed.push_back(idx);
        }
      }
    }
    if (waits.empty()) break;
    for (const auto& flight : waits) {
      std::unique_lock lock(flight->mu);
      if (!flight->cv.wait_until(lock, deadline, [&] { return flight->done; })) break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::lock_guard lock(mu_);
      for (uint32_t idx : claimed) inflight_.erase(idx);
      for (uint32_t idx : pinned) {
        auto it = pins_.find(idx);
        if (it != pins_.end() && --it->second == 0) pins_.erase(it);
      }
      std::lock_guard flight_lock(claim->mu);
      claim->done = true;
      claim->cv.notify_all();
      return Timeout(record_.name + ": chunks being fetched stayed busy past the --timeout deadline");
    }
  }

  Status written = file_->WriteAll(offset, data);
  std::vector<uint32_t> newly_dirty;  // chunks whose dirty row is to be queued
  uint64_t dirty_added = 0;
  uint64_t ticket = 0;
  uint64_t added = 0;
  {
    std::lock_guard lock(mu_);
    const uint64_t seq = ++write_seq_;
    const uint64_t tick = budget_->Tick();
    for (uint64_t i = first; i <= last; ++i) {
      auto idx = static_cast<uint32_t>(i);
      const bool was_claimed = std::find(claimed.begin(), claimed.end(), idx) != claimed.end();
      if (was_claimed) {
        inflight_.erase(idx);
        // A failed write leaves a claimed chunk absent: nothing of it was acknowledged.
        if (!written.ok()) continue;
        present_.add(idx);
        added += ChunkLength(idx);
      }
      // Present chunks are marked dirty even if the write failed midway:
      // what a read returns from the file is then what gets written back.
      MarkDirtyLocked(idx, seq, was_claimed ? ~uint64_t{0} : SubBlockMask(idx, offset, data.size()), newly_dirty,
                      dirty_added);
      last_access_[idx].store(tick, std::memory_order_relaxed);
    }
    for (uint32_t idx : pinned) {
      auto it = pins_.find(idx);
      if (it != pins_.end() && --it->second == 0) pins_.erase(it);
    }
    // Counted under mu_ (a write-back may clean them as soon as it is released).
    dirty_bytes_.fetch_add(dirty_added, std::memory_order_relaxed);
    budget_->AddDirty(dirty_added);
    // Queued under mu_, so the index sees dirty/clean in the order the RAM
    // state changed (a write-back's clean row can never land after this
    // write's dirty row and hide it).
    for (uint32_t idx : newly_dirty) {
      ChunkRecord rec;
      rec.idx = idx;
      rec.origin = ChunkOrigin::kWrite;
      rec.dirty = true;
      ticket = index_->EnqueuePut(file_, record_.name, rec);
    }
  }
  {
    std::lock_guard lock(claim->mu);
    claim->done = true;  // readers of claimed chunks look again
    claim->cv.notify_all();
  }
  if (added > 0) {
    cached_bytes_.fetch_add(added, std::memory_order_relaxed);
    budget_->Add(added);
  }

  // Durable locally before the acknowledgement: the data file is
  // fdatasync'ed and the dirty rows committed (one group commit).
  if (ticket == 0) ticket = index_->EnqueueSync(file_);
  Status durable = index_->WaitCommitted(ticket);
  if (!durable.ok()) {
    // Not acknowledged; but the chunks are dirty in RAM, and a later write
    // into them must not be acknowledged on a data sync alone.
    std::lock_guard lock(mu_);
    for (uint32_t idx : newly_dirty) {
      if (auto it = dirty_.find(idx); it != dirty_.end()) it->second.row_missing = true;
    }
  }
  if (!written.ok()) {
    ImageStats::Add(stats_.store_errors, 1);
    return written;
  }
  if (!durable.ok()) return durable.WithContext(record_.name + ": the write could not be made durable in the cache");
  ImageStats::Add(stats_.write_requests, 1);
  ImageStats::Add(stats_.bytes_written, data.size());
  return Status::Ok();
}

uint64_t ImageCache::WriteSeq() const {
  std::lock_guard lock(mu_);
  return write_seq_;
}

uint64_t ImageCache::dirty_chunks() const {
  std::lock_guard lock(mu_);
  return dirty_.size();
}

bool ImageCache::WaitWrittenBack(uint64_t barrier, Deadline deadline) {
  std::unique_lock lock(mu_);
  return written_back_cv_.wait_until(lock, deadline, [&] {
    for (const auto& [idx, d] : dirty_) {
      if (d.unflushed_from <= barrier) return false;
    }
    return true;
  });
}

std::vector<WriteBackRun> ImageCache::TakeWriteBackRuns(std::chrono::steady_clock::time_point dirty_before,
                                                        bool everything, uint64_t max_run_bytes, size_t max_runs) {
  std::vector<WriteBackRun> runs;
  if (max_runs == 0) return runs;
  const uint64_t sub = std::max<uint64_t>(1, record_.chunk_size / kSubBlocks);
  std::lock_guard lock(mu_);
  for (auto& [idx, d] : dirty_) {
    if (d.writing_back || (!everything && d.since > dirty_before)) continue;
    // One span per chunk, from its first to its last dirty sub-block (the
    // clean bytes between are present and correct, so sending them is harmless).
    const int lo = std::countr_zero(d.mask);
    const int hi = 63 - std::countl_zero(d.mask);
    const uint64_t begin = ChunkOffset(idx) + std::min<uint64_t>(ChunkLength(idx), lo * sub);
    const uint64_t stop = std::min(ChunkOffset(idx) + ChunkLength(idx),
                                   hi == 63 ? UINT64_MAX : ChunkOffset(idx) + (hi + 1) * sub);
    if (stop <= begin) continue;
    WriteBackRun* run = runs.empty() ? nullptr : &runs.back();
    if (run == nullptr || run->offset + run->length != begin || run->length + (stop - begin) > max_run_bytes) {
      if (runs.size() == max_runs) break;
      runs.push_back(WriteBackRun{begin, 0, {}});
      run = &runs.back();
    }
    run->length += stop - begin;
    run->chunks.emplace_back(idx, d.seq);
    d.writing_back = true;
  }
  return runs;
}

void ImageCache::FinishWriteBack(const WriteBackRun& run, const Status& status) {
  if (status.ok()) {
    ImageStats::Add(stats_.writeback_requests, 1);
    ImageStats::Add(stats_.writeback_bytes, run.length);
  } else {
    ImageStats::Add(stats_.writeback_errors, 1);
  }
  // Digests for the clean rows, read while the chunks are still dirty (so
  // not evictable); a write meanwhile changes the seq and the row stays dirty.
  std::vector<std::pair<uint32_t, ChunkDigest>> digests;
  if (status.ok()) {
    std::vector<uint8_t> buf;
    for (const auto& [idx, seq] : run.chunks) {
      buf.resize(ChunkLength(idx));
      if (file_->ReadAll(ChunkOffset(idx), buf).ok()) digests.emplace_back(idx, ComputeChunkDigest(buf));
    }
  }
  uint64_t cleaned_bytes = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& chunk : run.chunks) {
      const uint32_t idx = chunk.first;  // a plain variable: clang 14 cannot capture structured bindings
      const uint64_t seq = chunk.second;
      auto it = dirty_.find(idx);
      if (it == dirty_.end()) continue;
      DirtyChunk& d = it->second;
      d.writing_back = false;
      if (!status.ok()) continue;
      auto digest = std::find_if(digests.begin(), digests.end(), [&](const auto& p) { return p.first == idx; });
      if (d.seq == seq && digest != digests.end()) {
        ChunkRecord rec;
        rec.idx = idx;
        rec.origin = ChunkOrigin::kWrite;
        rec.digest = digest->second;
        // Under mu_: a later write's dirty row is queued after this one.
        // No data sync: the bytes were made durable when they were written.
        clean_rows_[idx] = PendingCleanRow{index_->EnqueuePut(nullptr, record_.name, rec), rec};
        cleaned_bytes += ChunkLength(idx);
        dirty_.erase(it);
      } else {
        d.unflushed_from = std::max(d.unflushed_from, seq + 1);  // every write up to `seq` is on the storage host
      }
    }
    // Before a flush waiter can see the chunks clean, so that the stats it
    // reads next agree.
    dirty_bytes_.fetch_sub(cleaned_bytes, std::memory_order_relaxed);
  }
  written_back_cv_.notify_all();
  if (cleaned_bytes > 0) budget_->SubDirty(cleaned_bytes);
}

}  // namespace affinity::fs
