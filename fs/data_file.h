// DataFile: one image's sparse cache data file (chunk i at offset i * chunk_size).
//
// Every system call the cache makes on its data goes through here, so the
// error it produces is a Status with the path and the errno in it (ENOSPC
// becomes kNoSpace, so callers can tell a full cache disk from a broken one).
//
// Thread safety: all methods are safe to call concurrently (pread/pwrite
// with explicit offsets; no shared file position).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"

namespace affinity::fs {

class DataFile {
 public:
  // Opens or creates `path` and sets its length to `size` (holes, no data).
  static Result<std::shared_ptr<DataFile>> Open(const std::string& path, uint64_t size);
  ~DataFile();
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  Status WriteAll(uint64_t offset, std::span<const uint8_t> data);
  // Reads exactly data.size() bytes; a short read (file truncated behind our back) is kCorruption.
  Status ReadAll(uint64_t offset, std::span<uint8_t> data) const;
  // Frees the blocks of [offset, offset+length) and makes them read as zeros.
  Status PunchHole(uint64_t offset, uint64_t length);
  // Drops every block (all holes) and sets the length to `size`.
  Status Reset(uint64_t size);
  Status Sync();

 private:
  DataFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

}  // namespace affinity::fs
