// ImageCache: the chunk cache of one image — what is present, what is being
// fetched, who is reading what — and the read path's miss handling.
//
// Read path (docs/architecture.md):
//   Acquire(off, len) looks at the in-memory presence bitmap only. Chunks
//   present from an earlier run are verified (XXH3) on their first read; a
//   mismatch drops the chunk and fetches it again. Absent chunks not yet in
//   flight are grouped into runs of adjacent chunks, each run one range
//   request (coalescing); chunks already in flight are waited for, never
//   fetched twice (single-flight). When every chunk is present the lease pins
//   them, so eviction cannot punch a hole under a reply, and the caller
//   replies straight from the cache file (splice).
//   A fetched run is written to the data file, marked present in RAM at once,
//   and recorded in the index by the batched writer after an fdatasync.
//   If the cache disk cannot take the bytes (ENOSPC), the waiting reads are
//   served from the fetched buffer and nothing is marked present.
// Grants: while AccessState says access is revoked, Acquire fails with
//   kPermissionDenied before looking at anything. Each fetch carries the
//   migration tag current when it started; its chunks are remembered per
//   tag, and a fetch whose tag was purged meanwhile is discarded.
//
// Writes (docs/writes.md, image_cache_write.cc): Write() makes the chunks it
//   touches present first (a partial chunk is fetched; a fully overwritten
//   one is not), writes the cache file, marks them dirty and returns once
//   bytes and index rows are durable locally. Dirty chunks are never evicted
//   or dropped; the WriteBack thread takes them (TakeWriteBackRuns), PUTs
//   them and reports back (FinishWriteBack): a chunk becomes clean only if no
//   write touched it since its bytes were read for the PUT.
//
// Thread safety: all public methods from any thread. mu_ guards the bitmaps
// and tables; it is never held while waiting for a fetch, doing file I/O, or
// calling into the ChunkSource.
#pragma once

#include <roaring/roaring.hh>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "fs/access_state.h"
#include "fs/cache_budget.h"
#include "fs/chunk_index.h"
#include "fs/chunk_source.h"
#include "fs/data_file.h"
#include "fs/image_stats.h"

namespace affinity::fs {

class ImageCache;

// What a read replies from: a pinned span of the cache file, or (when the
// cache disk refused the bytes) an owned buffer. Unpins on destruction.
class ReadLease {
 public:
  ReadLease() = default;
  ~ReadLease();
  ReadLease(ReadLease&& other) noexcept;
  ReadLease& operator=(ReadLease&& other) noexcept;
  ReadLease(const ReadLease&) = delete;
  ReadLease& operator=(const ReadLease&) = delete;

  uint64_t offset() const { return offset_; }
  uint64_t length() const { return length_; }
  bool from_memory() const { return memory_ != nullptr; }
  int fd() const { return fd_; }                          // when !from_memory()
  const std::vector<uint8_t>& memory() const { return *memory_; }  // when from_memory()

 private:
  friend class ImageCache;
  void Release();
  ImageCache* owner_ = nullptr;
  uint32_t first_chunk_ = 0, last_chunk_ = 0;
  bool pinned_ = false;
  int fd_ = -1;
  uint64_t offset_ = 0, length_ = 0;
  std::shared_ptr<std::vector<uint8_t>> memory_;
};

// A span of dirty bytes the write-back sends in one PUT: contiguous, over one
// or more chunks, each with the write sequence its bytes were taken at.
struct WriteBackRun {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::vector<std::pair<uint32_t, uint64_t>> chunks;  // (chunk index, its write seq when taken)
};

struct EvictionCandidate {
  uint64_t last_access;
  ImageCache* image;
  uint32_t idx;
};

class ImageCache : public std::enable_shared_from_this<ImageCache> {
 public:
  using Deadline = ChunkSource::Deadline;

  // REQUIRES: record.size / record.chunk_size < 2^32, chunk_size a power of two.
  // `access` (may be null: always readable, no tags) must outlive the cache.
  ImageCache(ImageRecord record, std::shared_ptr<DataFile> file, ChunkIndex* index, ChunkSource* source,
             CacheBudget* budget, AccessState* access = nullptr);
  ~ImageCache();

  // Start-up: chunks the index says are present (verified lazily on first read).
  void LoadPresent(const std::vector<ChunkRecord>& chunks);

  // Makes [offset, offset+length) (clamped to the image size) readable and
  // pins it. kTimeout when the deadline passes first; the fetch's own error
  // (kUnavailable, kPermissionDenied, kCorruption, ...) when it failed.
  Result<ReadLease> Acquire(uint64_t offset, uint64_t length, Deadline deadline);

  // Called for each read: detects sequential streams and fetches ahead of
  // them with a window as long as the stream so far, up to the maximum.
  void NoteReadForReadahead(uint64_t offset, uint64_t length, Deadline deadline);
  void set_max_readahead_bytes(uint64_t bytes) { max_readahead_bytes_ = bytes; }
  // The chunks the VM's profile says it reads (the prefetch engine, from its
  // plan). A sequential stream inside them is read ahead only into them: the
  // profile knows where the stream stops, so bytes past it would be
  // over-fetch. A stream outside them (something new) gets the full window.
  void SetProfiledChunks(Roaring chunks);

  // Prefetch engine: fetches the absent, not in-flight chunks of
  // [first, last] (runs of adjacent chunks, one request each) at `priority`;
  // `done(first, last, status)` runs on the fetch thread when each run landed.
  // Returns the runs started, [first, last] each (none: nothing was missing).
  std::vector<std::pair<uint32_t, uint32_t>> Prefetch(uint32_t first, uint32_t last, fetcher::Priority priority,
                                                      Deadline deadline,
                                                      const std::function<void(uint32_t, uint32_t, const Status&)>& done);
  bool IsPresent(uint32_t idx) const;
  bool IsInFlight(uint32_t idx) const;

  // Eviction (called by the Evictor thread).
  void CollectEvictionCandidates(std::vector<EvictionCandidate>& out);
  // Drops the chunk if it is present, unpinned and not being fetched;
  // returns the bytes freed (0 if it was skipped).
  uint64_t TryEvict(uint32_t idx);

  // Grants (docs/grants.md). Both wait for readers of a chunk to finish
  // and for a fetch of it to land, then punch it out of the data file and
  // the index; kTimeout if that takes past `deadline`.
  // Every chunk fetched under `migration` (an aborted one):
  Status PurgeMigration(const std::string& migration, Deadline deadline);
  // Every chunk overlapping [offset, offset+length) (stale at commit):
  Status InvalidateRange(uint64_t offset, uint64_t length, Deadline deadline);

  // --- writes (image_cache_write.cc) ---
  // kReadOnly while this host may not write; kOutOfRange past the image's
  // end (images have a fixed size); kTimeout when a fetch of a partial chunk
  // or room among the dirty bytes did not come in time; kNoSpace / kIoError
  // from the cache disk. On an error the range's content is undefined (as on
  // a disk), but whatever a later read returns is what gets written back.
  Status Write(uint64_t offset, std::span<const uint8_t> data, Deadline deadline);
  // The sequence number of the last acknowledged write (a flush barrier).
  uint64_t WriteSeq() const;
  // Waits until every write with seq <= barrier is on the storage host;
  // false if the deadline passed first.
  bool WaitWrittenBack(uint64_t barrier, Deadline deadline);
  // Write-back: dirty chunks not already being written back, dirty since
  // before `dirty_before` (all of them if `everything`), as runs of at most
  // `max_run_bytes`, at most `max_runs` runs.
  std::vector<WriteBackRun> TakeWriteBackRuns(std::chrono::steady_clock::time_point dirty_before, bool everything,
                                              uint64_t max_run_bytes, size_t max_runs);
  // The run was PUT (status ok) or failed; chunks not rewritten since become clean.
  void FinishWriteBack(const WriteBackRun& run, const Status& status);
  uint64_t dirty_bytes() const { return dirty_bytes_.load(std::memory_order_relaxed); }
  uint64_t dirty_chunks() const;
  DataFile& data_file() { return *file_; }

  const ImageRecord& record() const { return record_; }
  ImageStats& stats() { return stats_; }
  uint64_t cached_bytes() const { return cached_bytes_.load(std::memory_order_relaxed); }
  uint64_t chunks_present() const;
  uint32_t chunk_count() const { return chunk_count_; }
  uint32_t chunk_size() const { return record_.chunk_size; }

 private:
  friend class ReadLease;
  struct Flight;

  uint64_t ChunkOffset(uint32_t idx) const { return uint64_t{idx} * record_.chunk_size; }
  uint64_t ChunkLength(uint32_t idx) const;
  // Under mu_: register runs of absent, not-in-flight chunks in [first, last].
  void PlanRunsLocked(uint32_t first, uint32_t last, ChunkOrigin origin, uint64_t max_run_bytes,
                      std::vector<std::shared_ptr<Flight>>& started);
  void StartFlights(const std::vector<std::shared_ptr<Flight>>& flights, fetcher::Priority priority,
                    Deadline deadline);
  void OnFetched(const std::shared_ptr<Flight>& flight, Result<std::vector<uint8_t>> result);
  // Verifies one chunk loaded from an earlier run; drops it on mismatch.
  void VerifyChunk(uint32_t idx);
  void Unpin(uint32_t first, uint32_t last);
  Status DropChunk(uint32_t idx, Deadline deadline);
  // TryEvict's work; `eviction` says whether it counts in evicted_bytes.
  uint64_t DropIfIdle(uint32_t idx, bool eviction);
  // Under mu_: whether chunk idx's index row no longer says "dirty" (see
  // clean_rows_); queues the clean row again if its commit failed.
  bool CleanRowDurableLocked(uint32_t idx);
  // A write's sub-block mask of chunk idx for [offset, offset+length).
  uint64_t SubBlockMask(uint32_t idx, uint64_t offset, uint64_t length) const;
  // Under mu_: chunk idx becomes dirty with write `seq` over `mask`; adds it
  // to `newly_dirty` when its dirty row must be queued, and its length to
  // `dirty_added` when it was clean.
  void MarkDirtyLocked(uint32_t idx, uint64_t seq, uint64_t mask, std::vector<uint32_t>& newly_dirty,
                       uint64_t& dirty_added);
  Result<ReadLease> ServeFromFlights(uint64_t offset, uint64_t length,
                                     const std::vector<std::shared_ptr<Flight>>& flights);

  const ImageRecord record_;
  const uint32_t chunk_count_;
  const std::shared_ptr<DataFile> file_;
  ChunkIndex* const index_;
  ChunkSource* const source_;
  CacheBudget* const budget_;
  AccessState* const access_;
  std::unique_ptr<std::atomic<uint64_t>[]> last_access_;  // per chunk, budget ticks
  std::atomic<uint64_t> cached_bytes_{0};
  std::atomic<uint64_t> max_readahead_bytes_{16 << 20};
  ImageStats stats_;

  mutable std::mutex mu_;
  Roaring present_;                                    // guarded by mu_
  Roaring unverified_;                                 // guarded by mu_
  std::unordered_map<uint32_t, ChunkDigest> unverified_digest_; // guarded by mu_
  std::unordered_map<uint32_t, std::shared_ptr<Flight>> inflight_;  // guarded by mu_
  std::unordered_map<uint32_t, uint32_t> pins_;                 // guarded by mu_
  std::unordered_map<std::string, Roaring> by_migration_;        // guarded by mu_; chunks per migration tag
  // Dirty chunks (written here, not yet on the storage host).
  struct DirtyChunk {
    uint64_t seq = 0;             // the last write to it
    uint64_t unflushed_from = 0;  // the oldest write to it not yet written back
    uint64_t mask = 0;            // dirty sub-blocks (chunk_size / 64 bytes each)
    bool writing_back = false;    // in a PUT now
    bool row_missing = false;     // its dirty index row failed to commit: the next write queues it again
    std::chrono::steady_clock::time_point since;  // dirty since (write-back delay)
  };
  std::map<uint32_t, DirtyChunk> dirty_;                        // guarded by mu_
  // Written-back chunks whose clean row is queued but not yet committed:
  // until it is, the index still says "dirty", so the chunk's bytes must
  // stay (a crash would otherwise leave a dirty row over a punched hole,
  // whose zeros the next start would write back).
  struct PendingCleanRow {
    uint64_t ticket = 0;
    ChunkRecord row;
  };
  std::unordered_map<uint32_t, PendingCleanRow> clean_rows_;  // guarded by mu_
  uint64_t write_seq_ = 0;                                      // guarded by mu_
  std::condition_variable written_back_cv_;                     // with mu_
  std::atomic<uint64_t> dirty_bytes_{0};
  uint64_t readahead_next_ = UINT64_MAX;                        // guarded by mu_
  uint64_t readahead_stream_bytes_ = 0;                         // guarded by mu_
  uint64_t readahead_planned_to_ = 0;                           // guarded by mu_; end of the stream's read-ahead so far
  Roaring profiled_;                                            // guarded by mu_; SetProfiledChunks
};

}  // namespace affinity::fs
