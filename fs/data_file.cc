#include "fs/data_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace affinity::fs {

Result<std::shared_ptr<DataFile>> DataFile::Open(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoStatus(errno, "open cache file " + path);
  auto file = std::shared_ptr<DataFile>(new DataFile(path, fd));
  struct stat st{};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "stat cache file " + path);
  if (static_cast<uint64_t>(st.st_size) != size && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return ErrnoStatus(errno, "resize cache file " + path);
  }
  return file;
}

DataFile::~DataFile() { ::close(fd_); }

Status DataFile::WriteAll(uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write cache file " + path_);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status DataFile::ReadAll(uint64_t offset, std::span<uint8_t> data) const {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read cache file " + path_);
    }
    if (n == 0) return Corruption("cache file " + path_ + " is shorter than its index says");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status DataFile::PunchHole(uint64_t offset, uint64_t length) {
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return ErrnoStatus(errno, "punch hole in cache file " + path_);
  }
  return Status::Ok();
}

Status DataFile::Reset(uint64_t size) {
  if (::ftruncate(fd_, 0) != 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return ErrnoStatus(errno, "reset cache file " + path_);
  }
  return Sync();
}

Status DataFile::Sync() {
  if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fdatasync cache file " + path_);
  return Status::Ok();
}

}  // namespace affinity::fs
