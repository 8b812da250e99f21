// ChunkIndex: the SQLite index of one VM's chunk cache (CACHE/<vm>/index.sqlite).
//
// Tables (format in docs/cache-format.md):
//   images(name, size, generation, chunk_size)  what the cached bytes belong to
//   chunks(image, idx, state, origin, digest, fetched_at, migration)
//     state 1: present and clean (digest = XXH3 of the bytes)
//     state 2: dirty: written here, not yet on the storage host (no digest)
// The read path never touches SQLite: it enqueues Put/Delete records, and one
// writer thread commits them in batches. Before committing a batch that marks
// chunks present, the writer fdatasyncs the data files those chunks live in,
// so a row says "present" only after its bytes are durable (SPEC §3).
// Writes wait for their batch (WaitCommitted): the index is opened with
// synchronous=FULL, so a committed dirty row survives a power cut, not only
// a killed daemon. A waiter makes the writer commit at once (group commit:
// writes that arrive during one fsync share the next one).
//
// Thread safety: every method may be called from any thread. The synchronous
// methods (start-up, reset) take the same db mutex the writer takes to commit.
// Lock order: queue_mu_ is never held while db_mu_ is taken by the same path.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <set>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/sqlite.h"
#include "common/status.h"
#include "fs/data_file.h"

namespace affinity::fs {

// How a chunk arrived in the cache (kept for stats and, later, eviction value).
enum class ChunkOrigin : uint8_t { kDemand = 0, kReadahead = 1, kPrefetch = 2, kWrite = 3 };

struct ImageRecord {
  std::string name;
  uint64_t size = 0;
  uint64_t generation = 0;
  uint32_t chunk_size = 0;
  bool operator==(const ImageRecord&) const = default;
};

struct ChunkRecord {
  uint32_t idx = 0;
  ChunkDigest digest{};
  ChunkOrigin origin = ChunkOrigin::kDemand;
  // The migration whose grant fetched it while that migration was open
  // ("" otherwise): an abort purges exactly these (docs/grants.md).
  std::string migration;
  // Written here and not yet written back (digest unused).
  bool dirty = false;
};

class ChunkIndex {
 public:
  // 2: chunks.migration (a v1 index is upgraded in place).
  // 3: state 2 = dirty (an older affinityfs must not open an index whose
  //    dirty rows it would ignore).
  static constexpr int kFormatVersion = 3;

  // Opens (creating if needed) the index; kCorruption if it is not ours or of
  // a newer format. Starts no thread.
  static Result<std::unique_ptr<ChunkIndex>> Open(const std::string& path);
  ~ChunkIndex();  // stops the writer after committing what is queued

  // --- synchronous, for start-up and resets ---
  Result<std::vector<ImageRecord>> ListImages();
  Result<std::vector<ChunkRecord>> LoadChunks(const std::string& image);
  // Forgets every chunk of the image and records `record` as its identity.
  Status ResetImage(const ImageRecord& record);
  Status DropImage(const std::string& image);
  // Dirty chunks of the image (written here, not yet written back).
  Result<uint64_t> CountDirty(const std::string& image);
  // Commits what is queued, deletes every row fetched under `migration` in
  // every image, and from now on drops queued rows of it instead of
  // committing them (a fetch that finishes after the purge).
  Status PurgeMigration(const std::string& migration);
  // A small key/value store for daemon state that must survive restarts.
  Result<std::string> GetMeta(const std::string& key);
  Status SetMeta(const std::string& key, const std::string& value);

  // --- asynchronous, batched ---
  void StartWriter();
  // Each returns a ticket for WaitCommitted.
  // Record a chunk present (or dirty). `file` (null: already durable) is
  // fdatasync'ed before the row commits.
  uint64_t EnqueuePut(std::shared_ptr<DataFile> file, const std::string& image, const ChunkRecord& chunk);
  uint64_t EnqueueDelete(const std::string& image, uint32_t idx);
  // Only fdatasync `file` in the next batch (a write into chunks already dirty).
  uint64_t EnqueueSync(std::shared_ptr<DataFile> file);
  // Blocks until the op with `ticket` is committed, at once (no batching
  // window); its batch's error if that failed.
  Status WaitCommitted(uint64_t ticket);
  // Without blocking: nothing while the op with `ticket` is still queued;
  // once it is processed, Ok or its batch's error.
  std::optional<Status> CommitState(uint64_t ticket) const;
  // Blocks until everything enqueued before the call is committed (or failed).
  // Returns the first commit error since the last Flush.
  Status Flush();
  uint64_t commit_errors() const;

 private:
  enum class OpKind : uint8_t { kPut, kDelete, kSync };
  struct Op {
    OpKind kind = OpKind::kPut;
    std::shared_ptr<DataFile> file;
    std::string image;
    ChunkRecord chunk;
  };

  explicit ChunkIndex(std::unique_ptr<SqliteDb> db);
  Status Migrate();
  void WriterLoop();
  Status CommitBatch(std::vector<Op>& batch);
  uint64_t Enqueue(Op op);
  // Under queue_mu_: the error of the failed batch that held `ticket`, or Ok.
  Status BatchStatusLocked(uint64_t ticket) const;

  std::mutex db_mu_;  // guards db_ and its statements
  std::unique_ptr<SqliteDb> db_;

  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable flushed_cv_;
  std::deque<Op> queue_;       // guarded by queue_mu_
  uint64_t enqueued_ = 0;      // guarded by queue_mu_
  uint64_t committed_ = 0;     // guarded by queue_mu_ (ops taken off and processed)
  Status first_error_;         // guarded by queue_mu_
  uint64_t commit_errors_ = 0; // guarded by queue_mu_
  int urgent_waiters_ = 0;     // guarded by queue_mu_; WaitCommitted callers
  // Failed batches [first, last] ticket ranges, newest last (bounded).
  std::deque<std::pair<std::pair<uint64_t, uint64_t>, Status>> failed_batches_;  // guarded by queue_mu_
  bool stop_ = false;          // guarded by queue_mu_
  std::set<std::string> purged_migrations_;  // guarded by queue_mu_
  std::thread writer_;
};

}  // namespace affinity::fs
