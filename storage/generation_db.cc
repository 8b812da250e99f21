#include "storage/generation_db.h"

#include <sys/stat.h>

#include <cerrno>

namespace affinity::storage {

Result<std::unique_ptr<GenerationDb>> GenerationDb::Open(const std::string& state_dir) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create --state directory " + state_dir);
  }
  auto db = SqliteDb::Open(state_dir + "/storage.sqlite");
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS image_generations(vm TEXT NOT NULL, image TEXT NOT NULL, size INTEGER NOT NULL,"
      " mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, generation INTEGER NOT NULL, PRIMARY KEY(vm, image))"
      " WITHOUT ROWID;");
  if (!s.ok()) return s;
  return std::unique_ptr<GenerationDb>(new GenerationDb(std::move(db).value()));
}

Result<uint64_t> GenerationDb::Generation(const std::string& vm, const std::string& image, const FileIdentity& id) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(vm, image);
  auto it = memo_.find(key);
  if (it != memo_.end() && it->second.first == id) return it->second.second;

  auto get = db_->Prepare("SELECT size, mtime_ns, inode, generation FROM image_generations WHERE vm=?1 AND image=?2");
  if (!get.ok()) return get.status();
  get->Bind(1, vm).Bind(2, image);
  auto row = get->Step();
  if (!row.ok()) return row.status();
  uint64_t generation = 1;
  bool same = false;
  if (*row) {
    FileIdentity stored{static_cast<uint64_t>(get->ColumnInt64(0)), static_cast<uint64_t>(get->ColumnInt64(1)),
                        static_cast<uint64_t>(get->ColumnInt64(2))};
    uint64_t old = static_cast<uint64_t>(get->ColumnInt64(3));
    same = stored == id;
    generation = same ? old : old + 1;
  }
  if (!same) {
    auto put = db_->Prepare(
        "INSERT OR REPLACE INTO image_generations(vm, image, size, mtime_ns, inode, generation) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    if (!put.ok()) return put.status();
    Status s = put->Bind(1, vm)
                   .Bind(2, image)
                   .Bind(3, static_cast<int64_t>(id.size))
                   .Bind(4, static_cast<int64_t>(id.mtime_ns))
                   .Bind(5, static_cast<int64_t>(id.inode))
                   .Bind(6, static_cast<int64_t>(generation))
                   .Run();
    if (!s.ok()) return s;
  }
  memo_[key] = {id, generation};
  return generation;
}

}  // namespace affinity::storage
