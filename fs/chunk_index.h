// ChunkIndex: the SQLite index of one VM's chunk cache (CACHE/<vm>/index.sqlite).
//
// Tables (format in docs/cache-format.md):
//   images(name, size, generation, chunk_size)  what the cached bytes belong to
//   chunks(image, idx, state, origin, digest, fetched_at, migration)
// The read path never touches SQLite: it enqueues Put/Delete records, and one
// writer thread commits them in batches. Before committing a batch that marks
// chunks present, the writer fdatasyncs the data files those chunks live in,
// so a row says "present" only after its bytes are durable (SPEC §3).
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
};

class ChunkIndex {
 public:
  // 2: chunks.migration (a v1 index is upgraded in place).
  static constexpr int kFormatVersion = 2;

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
  // Commits what is queued, deletes every row fetched under `migration` in
  // every image, and from now on drops queued rows of it instead of
  // committing them (a fetch that finishes after the purge).
  Status PurgeMigration(const std::string& migration);
  // A small key/value store for daemon state that must survive restarts.
  Result<std::string> GetMeta(const std::string& key);
  Status SetMeta(const std::string& key, const std::string& value);

  // --- asynchronous, batched ---
  void StartWriter();
  // Record a chunk present. `file` is fdatasync'ed before the row commits.
  void EnqueuePut(std::shared_ptr<DataFile> file, const std::string& image, const ChunkRecord& chunk);
  void EnqueueDelete(const std::string& image, uint32_t idx);
  // Blocks until everything enqueued before the call is committed (or failed).
  // Returns the first commit error since the last Flush.
  Status Flush();
  uint64_t commit_errors() const;

 private:
  struct Op {
    bool put = true;
    std::shared_ptr<DataFile> file;
    std::string image;
    ChunkRecord chunk;
  };

  explicit ChunkIndex(std::unique_ptr<SqliteDb> db);
  Status Migrate();
  void WriterLoop();
  Status CommitBatch(std::vector<Op>& batch);

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
  bool stop_ = false;          // guarded by queue_mu_
  std::set<std::string> purged_migrations_;  // guarded by queue_mu_
  std::thread writer_;
};

}  // namespace affinity::fs
