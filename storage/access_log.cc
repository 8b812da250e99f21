#include "storage/access_log.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <string_view>

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
      "CREATE INDEX IF NOT EXISTS sessions_by_vm ON sessions(vm);"
      "CREATE TABLE IF NOT EXISTS imported_profiles(vm TEXT PRIMARY KEY, profile BLOB NOT NULL,"
      " imported_ms INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS served(vm TEXT NOT NULL, holder TEXT NOT NULL, image TEXT NOT NULL,"
      " offset INTEGER NOT NULL, length INTEGER NOT NULL, at_ms INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS served_by_vm ON served(vm, holder, at_ms);");
  if (!s.ok()) return s;
  // Columns added after the first release: a session's kind and when it last
  // uploaded (the live session of a migration is the one still uploading).
  for (const char* column : {"kind INTEGER NOT NULL DEFAULT 0", "last_ms INTEGER NOT NULL DEFAULT 0"}) {
    const std::string name(column, std::string_view(column).find(' '));
    auto has = (*db)->Prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = ?1");
    if (!has.ok()) return has.status();
    has->Bind(1, name);
    auto row = has->Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      s = (*db)->Exec(std::string("ALTER TABLE sessions ADD COLUMN ") + column);
      if (!s.ok()) return s;
    }
  }
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
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  if (!known) {
    auto ins = db_->Prepare(
        "INSERT INTO sessions(session, vm, holder, start_ms, received_ms, kind, last_ms) VALUES(?1,?2,?3,?4,?5,?6,?5)");
    if (!ins.ok()) return rollback(ins.status());
    s = ins->Bind(1, batch.session)
            .Bind(2, vm)
            .Bind(3, holder)
            .Bind(4, batch.session_start_ms)
            .Bind(5, now)
            .Bind(6, static_cast<int64_t>(batch.kind))
            .Run();
    if (!s.ok()) return rollback(s);
  } else {
    auto touch = db_->Prepare("UPDATE sessions SET last_ms = ?2 WHERE session = ?1");
    if (!touch.ok()) return rollback(touch.status());
    s = touch->Bind(1, batch.session).Bind(2, now).Run();
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

Result<std::vector<profile::SessionTrace>> AccessLog::RecentSessions(const std::string& vm, size_t max_sessions) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare(
      "SELECT session, start_ms, kind, holder, last_ms FROM sessions WHERE vm = ?1 ORDER BY start_ms DESC, session LIMIT ?2");
  if (!st.ok()) return st.status();
  st->Bind(1, vm).Bind(2, static_cast<int64_t>(max_sessions));
  std::vector<profile::SessionTrace> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    profile::SessionTrace t;
    t.id = st->ColumnText(0);
    t.start_ms = st->ColumnInt64(1);
    t.kind = st->ColumnInt64(2) == 1 ? profile::SessionKind::kArrival : profile::SessionKind::kStart;
    t.holder = st->ColumnText(3);
    t.last_upload_ms = st->ColumnInt64(4);
    out.push_back(std::move(t));
  }
  auto rec = db_->Prepare("SELECT seq, image, offset, length, op, t_us FROM accesses WHERE session = ?1 ORDER BY seq");
  if (!rec.ok()) return rec.status();
  for (profile::SessionTrace& t : out) {
    rec->Reset();
    rec->Bind(1, t.id);
    for (;;) {
      auto row = rec->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      profile::AccessRecord r;
      r.seq = static_cast<uint64_t>(rec->ColumnInt64(0));
      r.image = rec->ColumnText(1);
      r.offset = static_cast<uint64_t>(rec->ColumnInt64(2));
      r.length = static_cast<uint64_t>(rec->ColumnInt64(3));
      r.op = rec->ColumnInt64(4) == 1 ? profile::AccessOp::kWrite : profile::AccessOp::kRead;
      r.t_us = static_cast<uint64_t>(rec->ColumnInt64(5));
      t.records.push_back(std::move(r));
    }
  }
  std::reverse(out.begin(), out.end());  // oldest first
  return out;
}

namespace {
constexpr int64_t kServedRetentionMs = 30LL * 24 * 3600 * 1000;
constexpr int64_t kServedRunGapMs = 10 * 60 * 1000;
constexpr int64_t kOverlapSlackMs = 60 * 1000;
}  // namespace

Status AccessLog::RecordServed(const std::vector<ServedRead>& reads) {
  std::lock_guard lock(mu_);
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  auto put = db_->Prepare("INSERT INTO served(vm, holder, image, offset, length, at_ms) VALUES(?1,?2,?3,?4,?5,?6)");
  if (!put.ok()) {
    (void)db_->Exec("ROLLBACK");
    return put.status();
  }
  for (const ServedRead& r : reads) {
    s = put->Bind(1, r.vm)
            .Bind(2, r.holder)
            .Bind(3, r.image)
            .Bind(4, static_cast<int64_t>(r.offset))
            .Bind(5, static_cast<int64_t>(r.length))
            .Bind(6, r.at_ms)
            .Run();
    if (!s.ok()) {
      (void)db_->Exec("ROLLBACK");
      return s;
    }
  }
  auto prune = db_->Prepare("DELETE FROM served WHERE at_ms < ?1");
  if (prune.ok()) s = prune->Bind(1, reads.back().at_ms - kServedRetentionMs).Run();
  if (!prune.ok() || !s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return prune.ok() ? s : prune.status();
  }
  return db_->Exec("COMMIT");
}

Result<std::vector<profile::SessionTrace>> AccessLog::ServedSessions(const std::string& vm,
                                                                     const std::vector<profile::SessionTrace>& uploaded,
                                                                     size_t max_sessions) {
  std::vector<profile::SessionTrace> runs;
  {
    std::lock_guard lock(mu_);
    auto st = db_->Prepare("SELECT holder, image, offset, length, at_ms FROM served WHERE vm = ?1 ORDER BY holder, at_ms");
    if (!st.ok()) return st.status();
    st->Bind(1, vm);
    std::string holder;
    int64_t last_ms = 0;
    for (;;) {
      auto row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::string h = st->ColumnText(0);
      const int64_t at = st->ColumnInt64(4);
      if (runs.empty() || h != holder || at - last_ms > kServedRunGapMs) {
        profile::SessionTrace t;
        t.id = "served-" + h.substr(0, 8) + "-" + std::to_string(at);
        t.start_ms = at;
        t.kind = profile::SessionKind::kArrival;
        t.holder = h;
        runs.push_back(std::move(t));
        holder = h;
      }
      last_ms = at;
      profile::SessionTrace& t = runs.back();
      t.last_upload_ms = at;
      t.records.push_back({t.records.size(), st->ColumnText(1), static_cast<uint64_t>(st->ColumnInt64(2)),
                           static_cast<uint64_t>(st->ColumnInt64(3)), profile::AccessOp::kRead,
                           static_cast<uint64_t>(at - t.start_ms) * 1000});
    }
  }
  int64_t oldest_uploaded = INT64_MAX;
  for (const auto& u : uploaded) oldest_uploaded = std::min(oldest_uploaded, u.start_ms);
  std::erase_if(runs, [&](const profile::SessionTrace& run) {
    // Older than the uploaded history in use: it may overlap a session that
    // is no longer in that list.
    if (oldest_uploaded != INT64_MAX && run.start_ms < oldest_uploaded) return true;
    for (const auto& u : uploaded) {
      if (u.holder == run.holder && u.start_ms <= run.last_upload_ms + kOverlapSlackMs &&
          u.last_upload_ms >= run.start_ms - kOverlapSlackMs) {
        return true;
      }
    }
    return false;
  });
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.start_ms < b.start_ms; });
  if (runs.size() > max_sessions) runs.erase(runs.begin(), runs.end() - static_cast<std::ptrdiff_t>(max_sessions));
  return runs;
}

Status AccessLog::ImportProfile(const std::string& vm, std::string_view encoded) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare("INSERT OR REPLACE INTO imported_profiles(vm, profile, imported_ms) VALUES(?1, ?2, ?3)");
  if (!st.ok()) return st.status();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return st->Bind(1, vm)
      .BindBlob(2, std::span(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()))
      .Bind(3, now)
      .Run();
}

Result<std::optional<std::string>> AccessLog::ImportedProfile(const std::string& vm) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare("SELECT profile FROM imported_profiles WHERE vm = ?1");
  if (!st.ok()) return st.status();
  st->Bind(1, vm);
  auto row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::string>();
  auto blob = st->ColumnBlob(0);
  return std::optional<std::string>(std::string(blob.begin(), blob.end()));
}

}  // namespace affinity::storage
