#include "storage/access_log.h"

#include <sqlite3.h>

#include <chrono>

#include "storage/state_dir.h"

namespace affinity::storage {

Result<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& state_dir) {
  auto db = OpenStateDatabase(state_dir, kFileName);
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS sessions(session TEXT PRIMARY KEY, vm TEXT NOT NULL, holder TEXT NOT NULL,"
      " start_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS accesses(session TEXT NOT NULL, seq INTEGER NOT NULL, image TEXT NOT NULL,"
      " offset INTEGER NOT NULL, length INTEGER NOT NULL, op INTEGER NOT NULL, t_us INTEGER NOT NULL,"
      " PRIMARY KEY(session, seq)) WITHOUT ROWID;"
      "CREATE INDEX IF NOT EXISTS sessions_by_vm ON sessions(vm);");
  if (!s.ok()) return s;
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(db).value()));
}

Result<AccessLog::Stored> AccessLog::Record(const std::string& vm, const std::string& holder,
                                            const profile::AccessBatch& batch) {
  std::lock_guard lock(mu_);
  auto owner = db_->Prepare("SELECT vm, holder FROM sessions WHERE session = ?1");
  if (!owner.ok()) return owner.status();
  owner->Bind(1, batch.session);
  auto row = owner->Step();
  if (!row.ok()) return row.status();
  const bool known = *row;
  if (known && (owner->ColumnText(0) != vm || owner->ColumnText(1) != holder)) {
    return PermissionDenied("session " + batch.session + " belongs to another VM or host");
  }
  owner->Reset();
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  auto rollback = [&](Status e) -> Result<Stored> {
    (void)db_->Exec("ROLLBACK");
    return e;
  };
  if (!known) {
    auto ins = db_->Prepare("INSERT INTO sessions(session, vm, holder, start_ms, received_ms) VALUES(?1,?2,?3,?4,?5)");
    if (!ins.ok()) return rollback(ins.status());
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    s = ins->Bind(1, batch.session).Bind(2, vm).Bind(3, holder).Bind(4, batch.session_start_ms).Bind(5, now).Run();
    if (!s.ok()) return rollback(s);
  }
  auto put = db_->Prepare(
      "INSERT OR IGNORE INTO accesses(session, seq, image, offset, length, op, t_us) VALUES(?1,?2,?3,?4,?5,?6,?7)");
  if (!put.ok()) return rollback(put.status());
  Stored stored;
  for (const auto& r : batch.records) {
    s = put->Bind(1, batch.session)
            .Bind(2, static_cast<int64_t>(r.seq))
            .Bind(3, r.image)
            .Bind(4, static_cast<int64_t>(r.offset))
            .Bind(5, static_cast<int64_t>(r.length))
            .Bind(6, static_cast<int64_t>(r.op))
            .Bind(7, static_cast<int64_t>(r.t_us))
            .Run();
    if (!s.ok()) return rollback(s);
    if (sqlite3_changes(db_->raw()) > 0) {
      ++stored.accepted;
    } else {
      ++stored.duplicates;
    }
  }
  s = db_->Exec("COMMIT");
  if (!s.ok()) return rollback(s);
  return stored;
}

Result<std::vector<SessionSummary>> AccessLog::Sessions(const std::string& vm) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare(
      "SELECT s.session, s.holder, s.start_ms, (SELECT count(*) FROM accesses a WHERE a.session = s.session) "
      "FROM sessions s WHERE s.vm = ?1 ORDER BY s.start_ms, s.session");
  if (!st.ok()) return st.status();
  st->Bind(1, vm);
  std::vector<SessionSummary> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->ColumnText(0), st->ColumnText(1), st->ColumnInt64(2), static_cast<uint64_t>(st->ColumnInt64(3))});
  }
  return out;
}

}  // namespace affinity::storage
