// ImageFile: a VM image file opened read-only, read with pread at exact
// offsets. The guest inspector's only access to the image (no mount).
//
// Thread safety: const methods may be called concurrently (pread).
// Failure: Open: kNotFound / kPermissionDenied / kIoError naming the file,
// kInvalidArgument for a directory or device. ReadExact: kCorruption when
// the file ends before the range does (a truncated image), kIoError otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace affinity::profile {

class ImageFile {
 public:
  static Result<ImageFile> Open(const std::string& path);

  ImageFile(ImageFile&& other) noexcept;
  ImageFile& operator=(ImageFile&& other) noexcept;
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  ~ImageFile();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

  // Reads exactly `len` bytes at `offset`.
  Status ReadExact(uint64_t offset, void* buf, size_t len) const;

 private:
  ImageFile(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}

  int fd_ = -1;
  uint64_t size_ = 0;  // at open: the image is not expected to change while inspected
  std::string path_;
};

}  // namespace affinity::profile
