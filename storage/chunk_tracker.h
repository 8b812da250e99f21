// ChunkTracker: what the storage host served under each migration's grant,
// and when each block of each image was last written, so that at commit it
// can tell the destination exactly which of its prefetched blocks went stale
// (docs/grants.md, "No stale reads at commit"). --state/tracking.sqlite.
//
// Granularity: 64 KiB tracking blocks of the image, independent of any
// client's chunk size; a destination invalidates every cached chunk that
// overlaps a stale range, so the answer is right whatever chunk size it uses.
//
// Ordering that makes it exact: a write is made durable in the image first,
// then RecordWrite gives it the next write sequence number; a read takes
// CurrentWriteSeq() *before* reading the bytes. So a write with a sequence
// number <= the served_seq of a serve was already in the file when that serve
// read it, and a block is stale exactly when its last write's sequence is
// greater than the earliest served_seq recorded for it (the earliest, so a
// block fetched twice is judged by its older copy: over-invalidation is
// safe, a missed one is not).
//
// Durability: WAL with synchronous=NORMAL: each record is committed before
// the reply that it describes is sent, so a storage host killed at any
// instant keeps every record of a reply it sent (a power loss of the whole
// host may lose the last transactions; see docs/grants.md).
//
// Thread safety: every method from any thread (one mutex; one small
// transaction per call).
// Failure: SQLite errors as Status with the database path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/byte_range.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace affinity::storage {

struct StaleRange {
  std::string image;
  ByteRange range;
};

struct ServedSummary {
  uint64_t blocks = 0;  // distinct tracking blocks served
  uint64_t serves = 0;  // block serves, repeats included
};

class ChunkTracker {
 public:
  static constexpr const char* kFileName = "tracking.sqlite";
  static constexpr uint64_t kBlockSize = 64 * 1024;

  static Result<std::unique_ptr<ChunkTracker>> Open(const std::string& state_dir);

  uint64_t CurrentWriteSeq() const { return write_seq_.load(std::memory_order_acquire); }

  Status RecordServed(const std::string& migration, const std::string& vm, const std::string& image,
                      const ByteRange& range, uint64_t served_seq, uint64_t generation);
  // On failure the tracker is marked incomplete (see complete()).
  Status RecordWrite(const std::string& vm, const std::string& image, const ByteRange& range);
  // False once a write could not be recorded: stale answers could miss it.
  bool complete() const { return !incomplete_.load(); }

  // Blocks served under `migration` that were written after being served,
  // merged into ranges, sorted by image then offset; the answer is also
  // stored as the migration's commit snapshot (replacing an earlier one), so
  // later writes by the new owner never show up as stale.
  Result<std::vector<StaleRange>> SnapshotStale(const std::string& migration, const std::string& vm);
  // The snapshot stored by SnapshotStale (empty if none).
  Result<std::vector<StaleRange>> StaleAtCommit(const std::string& migration);
  Result<ServedSummary> Served(const std::string& migration);

 private:
  explicit ChunkTracker(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // guarded by mu_
  std::atomic<uint64_t> write_seq_{0};
  std::atomic<bool> incomplete_{false};
};

}  // namespace affinity::storage
