#include "fs/chunk_index.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

namespace affinity::fs {
namespace {
constexpr size_t kMaxBatch = 1024;
// Commits are batched over this window: long enough to amortize the fsyncs,
// short enough that a crash loses only a moment of fetched (refetchable) data.
constexpr auto kBatchWindow = std::chrono::milliseconds(50);

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Result<std::unique_ptr<ChunkIndex>> ChunkIndex::Open(const std::string& path) {
  auto db = SqliteDb::Open(path);
  if (!db.ok()) return db.status();
  auto index = std::unique_ptr<ChunkIndex>(new ChunkIndex(std::move(db).value()));
  // Dirty rows are acknowledged writes: their commit must reach the disk.
  Status s = index->db_->Exec("PRAGMA synchronous=FULL");
  if (!s.ok()) return s;
  s = index->Migrate();
  if (!s.ok()) return s;
  return index;
}

ChunkIndex::ChunkIndex(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

ChunkIndex::~ChunkIndex() {
  {
    std::lock_guard lock(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) {
    writer_.join();
  } else {
    // Writer never started: commit what is queued on this thread.
    std::vector<Op> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    if (!batch.empty()) (void)CommitBatch(batch);
  }
}

Status ChunkIndex::Migrate() {
  std::lock_guard lock(db_mu_);
  Status s = db_->Exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS images(name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
      "  generation INTEGER NOT NULL, chunk_size INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS chunks(image TEXT NOT NULL, idx INTEGER NOT NULL, state INTEGER NOT NULL,"
      "  origin INTEGER NOT NULL, digest BLOB NOT NULL, fetched_at INTEGER NOT NULL,"
      "  migration TEXT NOT NULL DEFAULT '',"
      "  PRIMARY KEY(image, idx)) WITHOUT ROWID;");
  if (!s.ok()) return s;
  auto get = db_->Prepare("SELECT value FROM meta WHERE key='format_version'");
  if (!get.ok()) return get.status();
  auto row = get->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    int version = std::atoi(get->ColumnText(0).c_str());
    if (version == 1 || version == 2) {
      // v1 -> v3: chunks cached before grants existed belong to no migration.
      // v2 -> v3: no dirty rows can exist yet; only the version changes.
      get->Reset();
      s = db_->Exec(std::string("BEGIN IMMEDIATE;") +
                    (version == 1 ? "ALTER TABLE chunks ADD COLUMN migration TEXT NOT NULL DEFAULT '';" : "") +
                    "UPDATE meta SET value='3' WHERE key='format_version';"
                    "COMMIT;");
      if (!s.ok()) (void)db_->Exec("ROLLBACK");
      return s;
    }
    if (version != kFormatVersion) {
      return Corruption("cache index " + db_->path() + " has format version " + std::to_string(version) +
                        ", this affinityfs reads version " + std::to_string(kFormatVersion) +
                        "; remove the cache directory to start afresh");
    }
    return Status::Ok();
  }
  return db_->Exec("INSERT INTO meta(key, value) VALUES('format_version', '" + std::to_string(kFormatVersion) + "')");
}

Result<std::vector<ImageRecord>> ChunkIndex::ListImages() {
  std::lock_guard lock(db_mu_);
  auto stmt = db_->Prepare("SELECT name, size, generation, chunk_size FROM images ORDER BY name");
  if (!stmt.ok()) return stmt.status();
  std::vector<ImageRecord> out;
  for (;;) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({stmt->ColumnText(0), static_cast<uint64_t>(stmt->ColumnInt64(1)),
                   static_cast<uint64_t>(stmt->ColumnInt64(2)), static_cast<uint32_t>(stmt->ColumnInt64(3))});
  }
  return out;
}

Result<std::vector<ChunkRecord>> ChunkIndex::LoadChunks(const std::string& image) {
  std::lock_guard lock(db_mu_);
  auto stmt =
      db_->Prepare("SELECT idx, origin, digest, migration, state FROM chunks WHERE image=?1 AND state IN (1, 2) "
                   "ORDER BY idx");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, image);
  std::vector<ChunkRecord> out;
  for (;;) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ChunkRecord rec;
    rec.idx = static_cast<uint32_t>(stmt->ColumnInt64(0));
    rec.origin = static_cast<ChunkOrigin>(stmt->ColumnInt64(1));
    rec.dirty = stmt->ColumnInt64(4) == 2;
    auto blob = stmt->ColumnBlob(2);
    if (rec.dirty) {
      // no digest: the bytes were written here
    } else if (blob.size() != rec.digest.size()) {
      return Corruption("cache index row for " + image + " chunk " + std::to_string(rec.idx) + " has a bad digest");
    } else {
      std::memcpy(rec.digest.data(), blob.data(), blob.size());
    }
    rec.migration = stmt->ColumnText(3);
    out.push_back(rec);
  }
  return out;
}

Status ChunkIndex::ResetImage(const ImageRecord& record) {
  Status flushed = Flush();  // queued rows of the old identity must not land after the reset
  if (!flushed.ok()) spdlog::warn("cache index flush before reset of {}: {}", record.name, flushed.ToString());
  std::lock_guard lock(db_mu_);
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  auto del = db_->Prepare("DELETE FROM chunks WHERE image=?1");
  auto put = db_->Prepare(
      "INSERT INTO images(name, size, generation, chunk_size) VALUES(?1, ?2, ?3, ?4) "
      "ON CONFLICT(name) DO UPDATE SET size=excluded.size, generation=excluded.generation, "
      "chunk_size=excluded.chunk_size");
  if (!del.ok() || !put.ok()) {
    (void)db_->Exec("ROLLBACK");
    return del.ok() ? put.status() : del.status();
  }
  s = del->Bind(1, record.name).Run();
  if (s.ok()) {
    s = put->Bind(1, record.name)
            .Bind(2, static_cast<int64_t>(record.size))
            .Bind(3, static_cast<int64_t>(record.generation))
            .Bind(4, static_cast<int64_t>(record.chunk_size))
            .Run();
  }
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  return db_->Exec("COMMIT");
}

Status ChunkIndex::DropImage(const std::string& image) {
  Status flushed = Flush();
  if (!flushed.ok()) spdlog::warn("cache index flush before drop of {}: {}", image, flushed.ToString());
  std::lock_guard lock(db_mu_);
  auto del = db_->Prepare("DELETE FROM chunks WHERE image=?1");
  if (!del.ok()) return del.status();
  Status s = del->Bind(1, image).Run();
  if (!s.ok()) return s;
  auto img = db_->Prepare("DELETE FROM images WHERE name=?1");
  if (!img.ok()) return img.status();
  return img->Bind(1, image).Run();
}

Result<uint64_t> ChunkIndex::CountDirty(const std::string& image) {
  Status flushed = Flush();
  if (!flushed.ok()) return flushed;
  std::lock_guard lock(db_mu_);
  auto count = db_->Prepare("SELECT count(*) FROM chunks WHERE image=?1 AND state=2");
  if (!count.ok()) return count.status();
  count->Bind(1, image);
  auto row = count->Step();
  if (!row.ok()) return row.status();
  return static_cast<uint64_t>(count->ColumnInt64(0));
}

Status ChunkIndex::PurgeMigration(const std::string& migration) {
  {
    std::lock_guard lock(queue_mu_);
    purged_migrations_.insert(migration);
  }
  Status flushed = Flush();
  if (!flushed.ok()) spdlog::warn("cache index flush before purge of {}: {}", migration, flushed.ToString());
  std::lock_guard lock(db_mu_);
  auto del = db_->Prepare("DELETE FROM chunks WHERE migration=?1");
  if (!del.ok()) return del.status();
  Status s = del->Bind(1, migration).Run();
  if (!s.ok()) return s;
  // Fold the WAL back so the deleted rows do not linger in it.
  return db_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

Result<std::string> ChunkIndex::GetMeta(const std::string& key) {
  std::lock_guard lock(db_mu_);
  auto get = db_->Prepare("SELECT value FROM meta WHERE key=?1");
  if (!get.ok()) return get.status();
  get->Bind(1, key);
  auto row = get->Step();
  if (!row.ok()) return row.status();
  return *row ? get->ColumnText(0) : std::string();
}

Status ChunkIndex::SetMeta(const std::string& key, const std::string& value) {
  std::lock_guard lock(db_mu_);
  auto put = db_->Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  if (!put.ok()) return put.status();
  return put->Bind(1, key).Bind(2, value).Run();
}

void ChunkIndex::StartWriter() {
  if (!writer_.joinable()) writer_ = std::thread([this] { WriterLoop(); });
}

uint64_t ChunkIndex::Enqueue(Op op) {
  uint64_t ticket;
  {
    std::lock_guard lock(queue_mu_);
    if (op.kind == OpKind::kPut && !op.chunk.migration.empty() && purged_migrations_.count(op.chunk.migration) != 0) {
      return 0;  // nothing to wait for: dropped
    }
    queue_.push_back(std::move(op));
    ticket = ++enqueued_;
  }
  queue_cv_.notify_one();
  return ticket;
}

uint64_t ChunkIndex::EnqueuePut(std::shared_ptr<DataFile> file, const std::string& image, const ChunkRecord& chunk) {
  return Enqueue(Op{OpKind::kPut, std::move(file), image, chunk});
}

uint64_t ChunkIndex::EnqueueDelete(const std::string& image, uint32_t idx) {
  ChunkRecord rec;
  rec.idx = idx;
  return Enqueue(Op{OpKind::kDelete, nullptr, image, rec});
}

uint64_t ChunkIndex::EnqueueSync(std::shared_ptr<DataFile> file) {
  return Enqueue(Op{OpKind::kSync, std::move(file), std::string(), ChunkRecord{}});
}

Status ChunkIndex::WaitCommitted(uint64_t ticket) {
  std::unique_lock lock(queue_mu_);
  if (!writer_.joinable()) {
    lock.unlock();
    return Flush();
  }
  ++urgent_waiters_;
  queue_cv_.notify_one();
  flushed_cv_.wait(lock, [&] { return committed_ >= ticket || stop_; });
  --urgent_waiters_;
  if (committed_ < ticket) return Cancelled("cache index closed before the write was recorded");
  return BatchStatusLocked(ticket);
}

std::optional<Status> ChunkIndex::CommitState(uint64_t ticket) const {
  std::lock_guard lock(queue_mu_);
  if (committed_ < ticket) return std::nullopt;
  return BatchStatusLocked(ticket);
}

Status ChunkIndex::BatchStatusLocked(uint64_t ticket) const {
  for (const auto& [range, status] : failed_batches_) {
    if (ticket >= range.first && ticket <= range.second) return status;
  }
  return Status::Ok();
}

Status ChunkIndex::Flush() {
  std::unique_lock lock(queue_mu_);
  if (!writer_.joinable()) {
    std::vector<Op> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    lock.unlock();
    Status s = batch.empty() ? Status::Ok() : CommitBatch(batch);
    lock.lock();
    committed_ += batch.size();
    Status out = s.ok() ? first_error_ : s;
    first_error_ = Status::Ok();
    return out;
  }
  uint64_t target = enqueued_;
  queue_cv_.notify_one();
  flushed_cv_.wait(lock, [&] { return committed_ >= target || stop_; });
  Status out = first_error_;
  first_error_ = Status::Ok();
  return out;
}

uint64_t ChunkIndex::commit_errors() const {
  std::lock_guard lock(queue_mu_);
  return commit_errors_;
}

void ChunkIndex::WriterLoop() {
  std::unique_lock lock(queue_mu_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    // Let a batch accumulate unless someone waits in Flush or we are stopping.
    // A writer waiting for its dirty row commits the batch at once.
    queue_cv_.wait_for(lock, kBatchWindow,
                       [&] { return stop_ || queue_.size() >= kMaxBatch || urgent_waiters_ > 0; });
    std::vector<Op> batch;
    while (!queue_.empty() && batch.size() < kMaxBatch) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    Status s = CommitBatch(batch);
    lock.lock();
    const uint64_t first_ticket = committed_ + 1;
    committed_ += batch.size();
    if (!s.ok()) {
      failed_batches_.push_back({{first_ticket, committed_}, s});
      if (failed_batches_.size() > 64) failed_batches_.pop_front();
      ++commit_errors_;
      if (first_error_.ok()) first_error_ = s;
      spdlog::error("cache index commit of {} records failed (the chunks stay cached for this run and will be "
                    "fetched again after a restart): {}",
                    batch.size(), s.ToString());
    }
    flushed_cv_.notify_all();
  }
  flushed_cv_.notify_all();
}

Status ChunkIndex::CommitBatch(std::vector<Op>& batch) {
  // Durable bytes first, rows second: the crash-safety invariant.
  std::set<DataFile*> synced;
  for (const Op& op : batch) {
    if (op.kind != OpKind::kDelete && op.file && synced.insert(op.file.get()).second) {
      Status s = op.file->Sync();
      if (!s.ok()) return s;
    }
  }
  if (std::all_of(batch.begin(), batch.end(), [](const Op& op) { return op.kind == OpKind::kSync; })) {
    return Status::Ok();  // writes into chunks already dirty: the data sync was all they needed
  }
  std::lock_guard lock(db_mu_);
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  auto put = db_->Prepare(
      "INSERT OR REPLACE INTO chunks(image, idx, state, origin, digest, fetched_at, migration) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  auto del = db_->Prepare("DELETE FROM chunks WHERE image=?1 AND idx=?2");
  if (!put.ok() || !del.ok()) {
    (void)db_->Exec("ROLLBACK");
    return put.ok() ? del.status() : put.status();
  }
  int64_t now = NowUnixMs();
  for (const Op& op : batch) {
    if (op.kind == OpKind::kSync) continue;
    if (op.kind == OpKind::kPut) {
      s = put->Bind(1, op.image)
              .Bind(2, static_cast<int64_t>(op.chunk.idx))
              .Bind(3, int64_t{op.chunk.dirty ? 2 : 1})
              .Bind(4, static_cast<int64_t>(op.chunk.origin))
              .BindBlob(5, op.chunk.digest)
              .Bind(6, now)
              .Bind(7, op.chunk.migration)
              .Run();
    } else {
      s = del->Bind(1, op.image).Bind(2, static_cast<int64_t>(op.chunk.idx)).Run();
    }
    if (!s.ok()) {
      (void)db_->Exec("ROLLBACK");
      return s;
    }
  }
  return db_->Exec("COMMIT");
}

}  // namespace affinity::fs
