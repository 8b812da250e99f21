#include "storage/chunk_tracker.h"

#include <chrono>

#include "storage/state_dir.h"

namespace affinity::storage {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<ChunkTracker>> ChunkTracker::Open(const std::string& state_dir) {
  auto db = OpenStateDatabase(state_dir, kFileName);
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS served(migration TEXT NOT NULL, vm TEXT NOT NULL, image TEXT NOT NULL,"
      " block INTEGER NOT NULL, served_seq INTEGER NOT NULL, generation INTEGER NOT NULL,"
      " first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, serves INTEGER NOT NULL,"
      " PRIMARY KEY(migration, image, block)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS block_writes(vm TEXT NOT NULL, image TEXT NOT NULL, block INTEGER NOT NULL,"
      " seq INTEGER NOT NULL, PRIMARY KEY(vm, image, block)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS commit_stale(migration TEXT NOT NULL, image TEXT NOT NULL,"
      " offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY(migration, image, offset)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      "INSERT OR IGNORE INTO meta(key, value) VALUES('write_seq', 0);");
  if (!s.ok()) return s;
  std::unique_ptr<ChunkTracker> t(new ChunkTracker(std::move(db).value()));
  auto st = t->db_->Prepare("SELECT value FROM meta WHERE key = 'write_seq'");
  if (!st.ok()) return st.status();
  auto row = st->Step();
  if (!row.ok()) return row.status();
  t->write_seq_.store(*row ? static_cast<uint64_t>(st->ColumnInt64(0)) : 0);
  return t;
}

Status ChunkTracker::RecordServed(const std::string& migration, const std::string& vm, const std::string& image,
                                  const ByteRange& range, uint64_t served_seq, uint64_t generation) {
  if (range.length == 0) return Status::Ok();
  std::lock_guard lock(mu_);
  Status s = db_->Exec("BEGIN");
  if (!s.ok()) return s;
  auto st = db_->Prepare(
      "INSERT INTO served(migration, vm, image, block, served_seq, generation, first_ms, last_ms, serves) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1) ON CONFLICT(migration, image, block) DO UPDATE SET "
      "served_seq = min(served_seq, excluded.served_seq), generation = excluded.generation, "
      "last_ms = excluded.last_ms, serves = serves + 1");
  if (!st.ok()) {
    (void)db_->Exec("ROLLBACK");
    return st.status();
  }
  const int64_t now = NowMs();
  for (uint64_t b = range.offset / kBlockSize; b <= (range.end() - 1) / kBlockSize && s.ok(); ++b) {
    st->Bind(1, migration).Bind(2, vm).Bind(3, image).Bind(4, static_cast<int64_t>(b));
    st->Bind(5, static_cast<int64_t>(served_seq)).Bind(6, static_cast<int64_t>(generation)).Bind(7, now);
    s = st->Run();
  }
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) (void)db_->Exec("ROLLBACK");
  return s;
}

Status ChunkTracker::RecordWrite(const std::string& vm, const std::string& image, const ByteRange& range) {
  if (range.length == 0) return Status::Ok();
  std::lock_guard lock(mu_);
  const uint64_t seq = write_seq_.load() + 1;
  Status s = db_->Exec("BEGIN");
  if (!s.ok()) {
    incomplete_.store(true);
    return s;
  }
  auto st = db_->Prepare(
      "INSERT INTO block_writes(vm, image, block, seq) VALUES(?1, ?2, ?3, ?4) "
      "ON CONFLICT(vm, image, block) DO UPDATE SET seq = excluded.seq");
  if (!st.ok()) {
    (void)db_->Exec("ROLLBACK");
    incomplete_.store(true);
    return st.status();
  }
  for (uint64_t b = range.offset / kBlockSize; b <= (range.end() - 1) / kBlockSize && s.ok(); ++b) {
    st->Bind(1, vm).Bind(2, image).Bind(3, static_cast<int64_t>(b)).Bind(4, static_cast<int64_t>(seq));
    s = st->Run();
  }
  if (s.ok()) {
    auto meta = db_->Prepare("UPDATE meta SET value = ?1 WHERE key = 'write_seq'");
    s = meta.ok() ? meta->Bind(1, static_cast<int64_t>(seq)).Run() : meta.status();
  }
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    incomplete_.store(true);
    return s;
  }
  write_seq_.store(seq, std::memory_order_release);
  return Status::Ok();
}

Result<std::vector<StaleRange>> ChunkTracker::SnapshotStale(const std::string& migration, const std::string& vm) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare(
      "SELECT s.image, s.block FROM served s JOIN block_writes w "
      "ON w.vm = ?2 AND w.image = s.image AND w.block = s.block "
      "WHERE s.migration = ?1 AND w.seq > s.served_seq ORDER BY s.image, s.block");
  if (!st.ok()) return st.status();
  st->Bind(1, migration).Bind(2, vm);
  std::vector<StaleRange> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string image = st->ColumnText(0);
    const uint64_t offset = static_cast<uint64_t>(st->ColumnInt64(1)) * kBlockSize;
    if (!out.empty() && out.back().image == image && out.back().range.end() == offset) {
      out.back().range.length += kBlockSize;
    } else {
      out.push_back({std::move(image), ByteRange{offset, kBlockSize}});
    }
  }
  Status s = db_->Exec("BEGIN");
  if (!s.ok()) return s;
  auto del = db_->Prepare("DELETE FROM commit_stale WHERE migration = ?1");
  s = del.ok() ? del->Bind(1, migration).Run() : del.status();
  auto ins = db_->Prepare("INSERT INTO commit_stale(migration, image, offset, length) VALUES(?1, ?2, ?3, ?4)");
  if (s.ok() && !ins.ok()) s = ins.status();
  for (size_t i = 0; s.ok() && i < out.size(); ++i) {
    ins->Bind(1, migration).Bind(2, out[i].image).Bind(3, static_cast<int64_t>(out[i].range.offset));
    s = ins->Bind(4, static_cast<int64_t>(out[i].range.length)).Run();
  }
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  return out;
}

Result<std::vector<StaleRange>> ChunkTracker::StaleAtCommit(const std::string& migration) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare("SELECT image, offset, length FROM commit_stale WHERE migration = ?1 ORDER BY image, offset");
  if (!st.ok()) return st.status();
  st->Bind(1, migration);
  std::vector<StaleRange> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->ColumnText(0), ByteRange{static_cast<uint64_t>(st->ColumnInt64(1)),
                                                static_cast<uint64_t>(st->ColumnInt64(2))}});
  }
  return out;
}

Result<ServedSummary> ChunkTracker::Served(const std::string& migration) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare("SELECT count(*), coalesce(sum(serves), 0) FROM served WHERE migration = ?1");
  if (!st.ok()) return st.status();
  st->Bind(1, migration);
  auto row = st->Step();
  if (!row.ok()) return row.status();
  ServedSummary s;
  if (*row) {
    s.blocks = static_cast<uint64_t>(st->ColumnInt64(0));
    s.serves = static_cast<uint64_t>(st->ColumnInt64(1));
  }
  return s;
}

}  // namespace affinity::storage
