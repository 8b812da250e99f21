#include "fs/access_recorder.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace affinity::fs {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<AccessRecorder>> AccessRecorder::Open(AccessRecorderOptions options) {
  auto db = SqliteDb::Open(options.db_path);
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS sessions(session TEXT PRIMARY KEY, start_ms INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS accesses(session TEXT NOT NULL, seq INTEGER NOT NULL, image TEXT NOT NULL,"
      " offset INTEGER NOT NULL, length INTEGER NOT NULL, op INTEGER NOT NULL, t_us INTEGER NOT NULL,"
      " PRIMARY KEY(session, seq)) WITHOUT ROWID;");
  if (!s.ok()) return s;
  {
    // Added with session kinds; older files get the column (their sessions were starts).
    auto has = (*db)->Prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'kind'");
    if (!has.ok()) return has.status();
    auto row = has->Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      s = (*db)->Exec("ALTER TABLE sessions ADD COLUMN kind INTEGER NOT NULL DEFAULT 0");
      if (!s.ok()) return s;
    }
  }
  options.batch_records = std::min(options.batch_records, profile::kMaxRecordsPerBatch);
  std::unique_ptr<AccessRecorder> r(new AccessRecorder(std::move(options), std::move(db).value()));
  auto put = r->db_->Prepare("INSERT INTO sessions(session, start_ms, kind) VALUES(?1, ?2, ?3)");
  if (!put.ok()) return put.status();
  s = put->Bind(1, r->session_).Bind(2, NowMs()).Bind(3, static_cast<int64_t>(r->options_.kind)).Run();
  if (!s.ok()) return s;
  auto left = r->db_->Prepare("SELECT count(*) FROM accesses");  // what earlier daemons left to upload
  if (!left.ok()) return left.status();
  auto row = left->Step();
  if (!row.ok()) return row.status();
  r->on_disk_.store(*row ? static_cast<uint64_t>(left->ColumnInt64(0)) : 0);
  return r;
}

AccessRecorder::AccessRecorder(AccessRecorderOptions options, std::unique_ptr<SqliteDb> db)
    : options_(std::move(options)),
      session_(profile::NewSessionId()),
      started_(std::chrono::steady_clock::now()),
      ring_(options_.ring_capacity == 0 ? 1 : options_.ring_capacity),
      db_(std::move(db)) {}

AccessRecorder::~AccessRecorder() { Stop(); }

void AccessRecorder::Record(uint32_t image, uint64_t offset, uint64_t length, profile::AccessOp op) {
  if (length == 0 || image >= options_.images.size()) return;
  const uint64_t t_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_).count());
  {
    std::lock_guard lock(ring_mu_);
    if (pending_ == ring_.size()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    ring_[(head_ + pending_) % ring_.size()] = Entry{image, op, offset, length, t_us};
    ++pending_;
  }
  recorded_.fetch_add(1, std::memory_order_relaxed);
}

void AccessRecorder::Start(fetcher::HttpsClient* client) {
  client_ = client;
  thread_ = std::thread([this] { Loop(); });
}

void AccessRecorder::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  FlushAndUpload(std::chrono::seconds(2));  // a clean stop leaves nothing in RAM
}

void AccessRecorder::Loop() {
  auto next_upload = std::chrono::steady_clock::now() + options_.upload_interval;
  std::unique_lock lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, options_.flush_interval, [&] { return stopping_; })) {
    lock.unlock();
    std::lock_guard pass(db_mu_);
    Status s = Flush();
    if (!s.ok()) spdlog::warn("access recorder: cannot persist accesses: {}", s.ToString());
    if (std::chrono::steady_clock::now() >= next_upload) {
      bool more = true;
      for (int i = 0; i < 16 && more; ++i) {  // catch up, but leave time to flush
        if (!UploadOnce(options_.request_timeout, &more).ok()) break;
      }
      next_upload = std::chrono::steady_clock::now() + options_.upload_interval;
    }
    lock.lock();
  }
}

void AccessRecorder::FlushAndUpload(std::chrono::milliseconds timeout) {
  std::lock_guard pass(db_mu_);
  Status s = Flush();
  if (!s.ok()) spdlog::warn("access recorder: cannot persist accesses: {}", s.ToString());
  if (client_ == nullptr) return;
  bool more = true;
  for (int i = 0; i < 64 && more; ++i) {
    if (!UploadOnce(timeout, &more).ok()) break;
  }
}

Status AccessRecorder::Flush() {
  std::vector<Entry> batch;
  {
    std::lock_guard lock(ring_mu_);
    batch.reserve(pending_);
    for (size_t i = 0; i < pending_; ++i) batch.push_back(ring_[(head_ + i) % ring_.size()]);
    head_ = (head_ + pending_) % ring_.size();
    pending_ = 0;
  }
  if (batch.empty()) return Status::Ok();
  Status s = db_->Exec("BEGIN");
  if (!s.ok()) return s;
  auto put = db_->Prepare(
      "INSERT INTO accesses(session, seq, image, offset, length, op, t_us) VALUES(?1,?2,?3,?4,?5,?6,?7)");
  if (!put.ok()) {
    (void)db_->Exec("ROLLBACK");
    return put.status();
  }
  uint64_t seq = next_seq_;
  for (const Entry& e : batch) {
    s = put->Bind(1, session_)
            .Bind(2, static_cast<int64_t>(seq))
            .Bind(3, options_.images[e.image])
            .Bind(4, static_cast<int64_t>(e.offset))
            .Bind(5, static_cast<int64_t>(e.length))
            .Bind(6, static_cast<int64_t>(e.op))
            .Bind(7, static_cast<int64_t>(e.t_us))
            .Run();
    if (!s.ok()) break;
    ++seq;
  }
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    dropped_.fetch_add(batch.size(), std::memory_order_relaxed);  // disk full or broken: counted, never blocking reads
    return s;
  }
  next_seq_ = seq;
  persisted_.fetch_add(batch.size(), std::memory_order_relaxed);
  on_disk_.fetch_add(batch.size());
  return Status::Ok();
}

Status AccessRecorder::UploadOnce(std::chrono::milliseconds timeout, bool* more) {
  *more = false;
  // The oldest session with rows left, and its start.
  // Earlier sessions first (what a previous daemon left), then this one; the
  // sessions table is small and each EXISTS is one primary-key probe.
  auto first = db_->Prepare(
      "SELECT session, start_ms, kind FROM sessions s WHERE EXISTS (SELECT 1 FROM accesses a WHERE a.session = s.session) "
      "ORDER BY s.session = ?1, s.start_ms LIMIT 1");
  if (!first.ok()) return first.status();
  first->Bind(1, session_);
  auto row = first->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Ok();
  profile::AccessBatch batch;
  batch.session = first->ColumnText(0);
  batch.session_start_ms = first->ColumnInt64(1);
  batch.kind = first->ColumnInt64(2) == 1 ? profile::SessionKind::kArrival : profile::SessionKind::kStart;
  first->Reset();
  auto rows = db_->Prepare(
      "SELECT seq, image, offset, length, op, t_us FROM accesses WHERE session = ?1 ORDER BY seq LIMIT ?2");
  if (!rows.ok()) return rows.status();
  rows->Bind(1, batch.session).Bind(2, static_cast<int64_t>(options_.batch_records));
  for (;;) {
    auto r = rows->Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    profile::AccessRecord a;
    a.seq = static_cast<uint64_t>(rows->ColumnInt64(0));
    a.image = rows->ColumnText(1);
    a.offset = static_cast<uint64_t>(rows->ColumnInt64(2));
    a.length = static_cast<uint64_t>(rows->ColumnInt64(3));
    a.op = rows->ColumnInt64(4) == 1 ? profile::AccessOp::kWrite : profile::AccessOp::kRead;
    a.t_us = static_cast<uint64_t>(rows->ColumnInt64(5));
    batch.records.push_back(std::move(a));
  }
  if (batch.records.empty()) return Status::Ok();

  fetcher::Request req;
  req.method = "POST";
  req.path = "/v1/vms/" + options_.vm + "/accesses";
  req.body = profile::EncodeAccessBatch(batch);
  req.headers.push_back("Content-Type: application/json");
  req.priority = fetcher::Priority::kBackground;
  req.deadline = std::chrono::steady_clock::now() + timeout;
  fetcher::FetchOutcome out = client_->Fetch(std::move(req));
  if (!out.status.ok()) {
    upload_errors_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("access upload of {} records deferred: {}", batch.records.size(), out.status.ToString());
    return out.status;
  }
  auto del = db_->Prepare("DELETE FROM accesses WHERE session = ?1 AND seq <= ?2");
  if (!del.ok()) return del.status();
  Status s = del->Bind(1, batch.session).Bind(2, static_cast<int64_t>(batch.records.back().seq)).Run();
  if (!s.ok()) return s;
  if (batch.session != session_ && batch.records.size() < options_.batch_records) {
    // A previous daemon's session, now fully uploaded: forget it.
    auto gone = db_->Prepare("DELETE FROM sessions WHERE session = ?1");
    if (gone.ok()) (void)gone->Bind(1, batch.session).Run();
  }
  uploaded_.fetch_add(batch.records.size(), std::memory_order_relaxed);
  const uint64_t before = on_disk_.load();  // changed only under db_mu_, which we hold
  on_disk_.store(before > batch.records.size() ? before - batch.records.size() : 0);
  *more = on_disk_.load() > 0;
  return Status::Ok();
}

AccessRecorderStats AccessRecorder::stats() const {
  AccessRecorderStats s;
  s.recorded = recorded_.load();
  s.dropped = dropped_.load();
  s.persisted = persisted_.load();
  s.uploaded = uploaded_.load();
  s.upload_errors = upload_errors_.load();
  s.pending = on_disk_.load();
  return s;
}

}  // namespace affinity::fs
