// FuseServer: the libfuse3 low-level filesystem over a VmCache.
//
// Namespace: inode 1 is the VM's directory; image i is inode 2+i, a regular
// file of the image's size. The namespace is fixed for the life of the
// mount, so lookups need no lock and entries/attributes are cached by the
// kernel for an hour; create, unlink, rename, mkdir, ... answer EROFS.
//
// Writes (docs/writes.md): write() goes to ImageCache::Write and is answered
// once the bytes are durable in the local cache (EROFS while this host does
// not own the images); fsync/fdatasync wait for the write-back. Images keep
// their size: a write past the end is EFBIG, a truncate to another size
// EPERM, fallocate inside the size a no-op, punching holes EOPNOTSUPP.
// The kernel's write-back cache stays off (every write reaches us, so the
// acknowledgement means what docs/writes.md says).
//
// Reads: Acquire() from the ImageCache (may block this worker until the fetch
// completes or --timeout passes), then fuse_reply_data with an fd buffer, so
// libfuse splices from the cache file; the lease (chunk pins, not a lock) is
// released after the reply. Errors are mapped to errno in one place
// (Status::ToErrno) and logged once per read.
//
// Thread model: libfuse's multi-threaded loop; up to `max_threads` workers
// run the callbacks concurrently. No lock of ours is held across a reply.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/vm_cache.h"

struct fuse_session;

namespace affinity::fs {

struct FuseServerOptions {
  std::string mountpoint;
  std::string storage_url;
  std::vector<std::string> fuse_options;  // "-o" values, passed to libfuse
  std::chrono::milliseconds timeout{60000};
  // setxattr("user.affinity.control", value) on the mount's root: runs this
  // (e.g. "refresh": apply a migration's commit or abort now) and answers
  // with its errno. Empty: the attribute is refused with EROFS like any other.
  std::function<Status(const std::string& value)> control;
  // Told of every read request (image index, offset, length) before it is
  // served, on the FUSE worker: must be quick (the access recorder's ring).
  std::function<void(uint32_t image, uint64_t offset, uint64_t length)> on_read;
  // The same for every write acknowledged.
  std::function<void(uint32_t image, uint64_t offset, uint64_t length)> on_write;
  // More user.affinity.* attributes of the root directory (grant state).
  std::function<std::vector<std::pair<std::string, std::string>>()> extra_root_xattrs;
  unsigned max_threads = 64;
  bool debug = false;
};

class FuseServer {
 public:
  FuseServer(VmCache* cache, FuseServerOptions options);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Creates the session and mounts; kInvalidArgument for options libfuse rejects.
  Status Mount();
  // Serves until unmounted or a SIGINT/SIGTERM/SIGHUP arrives.
  Status Run();

  // Drops the kernel's page cache of `image` in [offset, offset+length)
  // (length 0: all of it), so the next read comes to us. Any thread but a
  // FUSE worker answering a request on that image.
  void InvalidateKernelCache(const std::string& image, uint64_t offset, uint64_t length);
  void InvalidateAllKernelCaches();

  // Used by the callbacks (public for the C trampolines).
  VmCache& cache() { return *cache_; }
  const FuseServerOptions& options() const { return options_; }

 private:
  VmCache* cache_;
  FuseServerOptions options_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  bool signals_installed_ = false;
};

}  // namespace affinity::fs
