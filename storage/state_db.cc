#include "storage/state_db.h"

#include "storage/state_dir.h"

namespace affinity::storage {

uint64_t NextGeneration(const std::optional<GenerationRecord>& recorded, const FileIdentity& now) {
  if (!recorded) return 1;
  if (recorded->identity == now) return recorded->generation;
  return recorded->generation + 1;
}

Result<std::unique_ptr<StateDb>> StateDb::Open(const std::string& state_dir) {
  auto db = OpenStateDatabase(state_dir, kFileName);
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS image_generations("
      " vm TEXT NOT NULL, image TEXT NOT NULL,"
      " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,"
      " generation INTEGER NOT NULL,"
      " PRIMARY KEY(vm, image)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS write_intents(vm TEXT NOT NULL, image TEXT NOT NULL,"
      " PRIMARY KEY(vm, image)) WITHOUT ROWID;");
  if (!s.ok()) return s;
  auto state = std::unique_ptr<StateDb>(new StateDb(std::move(db).value()));
  auto intents = state->db_->Prepare("SELECT vm, image FROM write_intents");
  if (!intents.ok()) return intents.status();
  for (;;) {
    auto row = intents->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    state->intents_.emplace(intents->ColumnText(0), intents->ColumnText(1));
  }
  return state;
}

Result<std::optional<GenerationRecord>> StateDb::Load(const std::string& vm, const std::string& image) {
  auto get =
      db_->Prepare("SELECT size, mtime_ns, inode, generation FROM image_generations WHERE vm = ?1 AND image = ?2");
  if (!get.ok()) return get.status();
  get->Bind(1, vm).Bind(2, image);
  auto row = get->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<GenerationRecord>();
  GenerationRecord r;
  r.identity = {static_cast<uint64_t>(get->ColumnInt64(0)), static_cast<uint64_t>(get->ColumnInt64(1)),
                static_cast<uint64_t>(get->ColumnInt64(2))};
  r.generation = static_cast<uint64_t>(get->ColumnInt64(3));
  return std::optional<GenerationRecord>(r);
}

Status StateDb::Store(const std::string& vm, const std::string& image, const GenerationRecord& r) {
  auto put = db_->Prepare(
      "INSERT OR REPLACE INTO image_generations(vm, image, size, mtime_ns, inode, generation)"
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  if (!put.ok()) return put.status();
  return put->Bind(1, vm)
      .Bind(2, image)
      .Bind(3, static_cast<int64_t>(r.identity.size))
      .Bind(4, static_cast<int64_t>(r.identity.mtime_ns))
      .Bind(5, static_cast<int64_t>(r.identity.inode))
      .Bind(6, static_cast<int64_t>(r.generation))
      .Run();
}

Result<uint64_t> StateDb::Generation(const std::string& vm, const std::string& image, const FileIdentity& now) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(vm, image);
  auto it = memo_.find(key);
  if (it != memo_.end() && it->second.identity == now) return it->second.generation;

  std::optional<GenerationRecord> recorded;
  if (it != memo_.end()) {
    recorded = it->second;  // the memo is always what the table holds
  } else {
    auto loaded = Load(vm, image);
    if (!loaded.ok()) return loaded.status().WithContext("load generation of " + vm + "/" + image);
    recorded = *loaded;
  }
  GenerationRecord next{now, NextGeneration(recorded, now)};
  const bool interrupted_write = recorded && intents_.count(key) != 0;
  if (interrupted_write) next.generation = recorded->generation;  // the change is an API write's
  if (!recorded || !(recorded->identity == now)) {
    Status s = Store(vm, image, next);
    if (!s.ok()) return s.WithContext("record generation of " + vm + "/" + image);
  }
  if (interrupted_write) {
    Status s = CloseIntent(key);
    if (!s.ok()) return s.WithContext("close the write intent of " + vm + "/" + image);
  }
  memo_[key] = next;
  return next.generation;
}

Status StateDb::BeginWrite(const std::string& vm, const std::string& image, const FileIdentity& current) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(vm, image);
  if (intents_.count(key) != 0) {
    // Left open by a write that never finished (the server died, or the
    // write failed midway): its change is adopted now, before this write's
    // AdoptWrite compares against the recorded identity. The intent stays
    // open for this write.
    std::optional<GenerationRecord> recorded;
    if (auto it = memo_.find(key); it != memo_.end()) {
      recorded = it->second;
    } else {
      auto loaded = Load(vm, image);
      if (!loaded.ok()) return loaded.status();
      recorded = *loaded;
    }
    if (recorded && !(recorded->identity == current)) {
      GenerationRecord adopted{current, recorded->generation};
      Status s = Store(vm, image, adopted);
      if (!s.ok()) return s;
      memo_[key] = adopted;
    }
    return Status::Ok();
  }
  auto put = db_->Prepare("INSERT OR IGNORE INTO write_intents(vm, image) VALUES(?1, ?2)");
  if (!put.ok()) return put.status();
  Status s = put->Bind(1, vm).Bind(2, image).Run();
  if (s.ok()) intents_.insert(key);
  return s;
}

Status StateDb::CloseIntent(const std::pair<std::string, std::string>& key) {
  if (intents_.count(key) == 0) return Status::Ok();
  auto del = db_->Prepare("DELETE FROM write_intents WHERE vm = ?1 AND image = ?2");
  if (!del.ok()) return del.status();
  Status s = del->Bind(1, key.first).Bind(2, key.second).Run();
  if (s.ok()) intents_.erase(key);
  return s;
}

Result<uint64_t> StateDb::AdoptWrite(const std::string& vm, const std::string& image, const FileIdentity& before,
                                     const FileIdentity& after) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(vm, image);
  std::optional<GenerationRecord> recorded;
  if (auto it = memo_.find(key); it != memo_.end()) {
    recorded = it->second;
  } else {
    auto loaded = Load(vm, image);
    if (!loaded.ok()) return loaded.status().WithContext("load generation of " + vm + "/" + image);
    recorded = *loaded;
  }
  GenerationRecord next{after, NextGeneration(recorded, before)};
  if (!recorded || !(recorded->identity == after) || recorded->generation != next.generation) {
    Status s = Store(vm, image, next);
    if (!s.ok()) return s.WithContext("record generation of " + vm + "/" + image);
  }
  Status closed = CloseIntent(key);
  if (!closed.ok()) return closed.WithContext("close the write intent of " + vm + "/" + image);
  memo_[key] = next;
  return next.generation;
}

}  // namespace affinity::storage
