// VolumeStore: the storage host's tree of VM image directories, ROOT/<vm>/<image>.
//
// Every name from a request is validated (common/names.h) and every open is
// relative to a directory fd with O_NOFOLLOW, so no request can leave ROOT:
// not with "..", not with an absolute path, not through a symlink (symlinked
// VM directories and images are refused outright, kPermissionDenied).
// Generations come from the GenerationDb: they change whenever an image's
// (size, mtime, inode) changes.
//
// Thread safety: all methods from any thread (the root fd is read-only state).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/generation_db.h"

namespace affinity::storage {

struct ImageInfo {
  std::string name;
  uint64_t size = 0;
  uint64_t generation = 0;
};

// An open image; closes its fd on destruction.
class OpenImage {
 public:
  OpenImage(int fd, ImageInfo info) : fd_(fd), info_(std::move(info)) {}
  ~OpenImage();
  OpenImage(const OpenImage&) = delete;
  OpenImage& operator=(const OpenImage&) = delete;
  int fd() const { return fd_; }
  const ImageInfo& info() const { return info_; }

 private:
  int fd_;
  ImageInfo info_;
};

class VolumeStore {
 public:
  static Result<std::unique_ptr<VolumeStore>> Open(const std::string& root, GenerationDb* generations);
  ~VolumeStore();

  Result<std::vector<std::string>> ListVms() const;
  // kNotFound for an unknown VM.
  Result<std::vector<ImageInfo>> ListImages(const std::string& vm) const;
  Result<std::unique_ptr<OpenImage>> Open(const std::string& vm, const std::string& image) const;

 private:
  VolumeStore(int root_fd, GenerationDb* generations) : root_fd_(root_fd), generations_(generations) {}
  Result<int> OpenVmDir(const std::string& vm) const;
  int root_fd_;
  GenerationDb* generations_;
};

}  // namespace affinity::storage
