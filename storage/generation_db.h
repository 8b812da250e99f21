// GenerationDb: a persistent content generation per image (--state/storage.sqlite).
//
// A destination caches an image's bytes together with the generation it was
// fetched at; when the generation changes, the cached bytes are stale. Here
// the generation is bumped whenever the file's identity (size, mtime in ns,
// inode) differs from the one recorded with it, and it survives restarts.
// (Writes through the API will bump it explicitly; issue 5.)
//
// Thread safety: any thread; a mutex guards the db and the in-memory memo
// that keeps data requests off SQLite when nothing changed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "common/sqlite.h"
#include "common/status.h"

namespace affinity::storage {

struct FileIdentity {
  uint64_t size = 0;
  uint64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

class GenerationDb {
 public:
  static Result<std::unique_ptr<GenerationDb>> Open(const std::string& state_dir);
  // The generation of vm/image given its current identity (1 at first sight).
  Result<uint64_t> Generation(const std::string& vm, const std::string& image, const FileIdentity& id);

 private:
  explicit GenerationDb(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;                                                  // guarded by mu_
  std::map<std::pair<std::string, std::string>, std::pair<FileIdentity, uint64_t>> memo_;  // guarded by mu_
};

}  // namespace affinity::storage
