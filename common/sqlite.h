// Thin RAII over the SQLite C API: a connection and prepared statements.
//
// Opens databases in WAL mode with synchronous=NORMAL (a commit is durable at
// the next checkpoint or WAL sync; callers that need more call Checkpoint) and
// a busy timeout, so a second reader (e.g. an operator's sqlite3 shell) does
// not make us fail. Errors carry SQLite's message and the database path.
//
// Thread safety: a SqliteDb and its statements belong to one thread at a time;
// callers serialize access (each user here guards its db with its own mutex).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity {

class SqliteStatement {
 public:
  SqliteStatement() = default;
  SqliteStatement(sqlite3_stmt* stmt, std::string db_path) : stmt_(stmt), db_path_(std::move(db_path)) {}
  ~SqliteStatement();
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&& other) noexcept;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Binds are 1-based, as in SQLite.
  SqliteStatement& Bind(int index, int64_t value);
  SqliteStatement& Bind(int index, std::string_view text);
  SqliteStatement& BindBlob(int index, std::span<const uint8_t> blob);

  // true: a row is available; false: done. Errors as Status.
  Result<bool> Step();
  // Step until done (for INSERT/UPDATE/DELETE), then Reset.
  Status Run();
  void Reset();

  int64_t ColumnInt64(int col) const;
  std::string ColumnText(int col) const;
  std::span<const uint8_t> ColumnBlob(int col) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  std::string db_path_;
};

class SqliteDb {
 public:
  // Creates the file if needed; WAL journal; foreign keys on.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  Status Exec(std::string_view sql);
  Result<SqliteStatement> Prepare(std::string_view sql);
  const std::string& path() const { return path_; }
  sqlite3* raw() { return db_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

}  // namespace affinity
