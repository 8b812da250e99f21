// OpenStateDatabase: one SQLite database under --state, the directory made
// (0700) if missing. Shared by StateDb, MigrationRegistry and ChunkTracker,
// which each keep their own file so their locks and sync levels stay apart.
//
// Failure: kInvalidArgument when --state exists but is not a directory;
// ErrnoStatus naming the directory; SqliteDb::Open's errors.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>

#include "common/sqlite.h"
#include "common/status.h"

namespace affinity::storage {

inline Result<std::unique_ptr<SqliteDb>> OpenStateDatabase(const std::string& state_dir, const char* file_name) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create --state directory " + state_dir);
  }
  struct stat st {};
  if (::stat(state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument("--state " + state_dir + " is not a directory");
  }
  return SqliteDb::Open(state_dir + "/" + file_name);
}

}  // namespace affinity::storage
