// VolumeStore: the storage host's tree of VM image directories,
// ROOT/<vm>/<image>, and the only code here that touches it.
//
// Safety: every name from a request is validated (common/names.h) before it
// is used, and every open is relative to a directory descriptor
// (openat) with O_NOFOLLOW: the VM directory with O_DIRECTORY|O_NOFOLLOW
// under the ROOT descriptor, the image with O_NOFOLLOW|O_NONBLOCK under the
// VM descriptor. So no request leaves ROOT: not with "..", not with an
// absolute path, not through a symbolic link (symlinked VM directories and
// images are refused and never listed), and a FIFO cannot block a thread.
// Generations come from the StateDb, keyed by each image's (size, mtime, inode).
//
// Thread safety: every method from any thread (the ROOT descriptor is
// constant after Open; StateDb does its own locking). An OpenImage belongs to
// one request at a time but ReadAt may be called from any thread.
// Failure: kInvalidArgument (a bad name; the message says which rule),
// kNotFound (no such VM or image, or not a regular file/directory),
// kPermissionDenied (a symbolic link, or the OS said EACCES),
// kIoError/kUnavailable (disk errors, an image shrinking while read).
#pragma once

#include <cstdint>
#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/state_db.h"
#include "storage/unique_fd.h"

struct stat;

namespace affinity::storage {

struct ImageInfo {
  std::string name;
  uint64_t size = 0;
  uint64_t generation = 0;
};

// An image opened for reading; its size and generation are those of the
// fstat() taken right after the open.
class OpenImage {
 public:
  OpenImage(UniqueFd fd, ImageInfo info) : fd_(std::move(fd)), info_(std::move(info)) {}
  const ImageInfo& info() const { return info_; }
  // For readers that open by path (the guest inspector): /proc/self/fd/N is
  // this very file, whatever happens to its name.
  std::string ProcPath() const { return "/proc/self/fd/" + std::to_string(fd_.get()); }
  // Reads exactly out.size() bytes at `offset` (pread, EINTR retried).
  // kUnavailable if the file ended early (it shrank), kIoError on a read error.
  Status ReadAt(uint64_t offset, std::span<char> out) const;

 private:
  UniqueFd fd_;
  ImageInfo info_;
};

class VolumeStore {
 public:
  // `root` must be a directory; `state` must outlive the store.
  static Result<std::unique_ptr<VolumeStore>> Open(const std::string& root, StateDb* state);

  // Directories directly under ROOT with valid names (no symlinks), sorted.
  Result<std::vector<std::string>> ListVms() const;
  // Regular files (no symlinks) with valid names in ROOT/<vm>, sorted by name,
  // each with its size and current generation.
  Result<std::vector<ImageInfo>> ListImages(const std::string& vm) const;
  Result<std::unique_ptr<OpenImage>> OpenImageFile(const std::string& vm, const std::string& image) const;

  // Writes `data` at `offset` of an existing image and makes it durable
  // (fdatasync) before returning; the range must lie inside the image (images
  // do not grow through the API): kOutOfRange otherwise. Writes to one image
  // are serialized, so the generation bookkeeping sees each change alone.
  // Returns the image's generation (unchanged by the write, see
  // StateDb::AdoptWrite). `abandoned`, checked once the image's writes are
  // serialized and before anything changes: true drops the write with
  // kCancelled (its client went away; see ApiRequest::client_gone).
  Result<uint64_t> WriteAt(const std::string& vm, const std::string& image, uint64_t offset,
                           std::span<const char> data, const std::function<bool()>& abandoned = {}) const;

 private:
  VolumeStore(UniqueFd root, StateDb* state) : root_(std::move(root)), state_(state) {}
  Result<UniqueFd> OpenVmDir(const std::string& vm) const;
  // Opens ROOT/vm/image with `flags` (plus O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC), a regular file.
  Result<UniqueFd> OpenImageFd(const std::string& vm, const std::string& image, int flags, struct stat* st) const;

  const UniqueFd root_;
  StateDb* const state_;
  // By hash of vm/image: a write holds its stripe exclusively from its
  // first stat to AdoptWrite; a read's stat + Generation holds it shared, so
  // a read never sees the identity of a write in progress (which would count
  // as an out-of-band change and bump the generation).
  std::shared_mutex& StripeOf(const std::string& vm, const std::string& image) const;
  mutable std::array<std::shared_mutex, 64> write_stripes_;
};

}  // namespace affinity::storage
