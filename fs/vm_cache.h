// VmCache: the on-disk chunk cache of one VM's image directory.
//
//   CACHE_DIR/<vm>/lock           flock'ed while a daemon uses the cache
//   CACHE_DIR/<vm>/index.sqlite   ChunkIndex (WAL)
//   CACHE_DIR/<vm>/data/<image>   one sparse DataFile per image
//
// Open() reconciles the cache with the storage host's listing: an image whose
// size, generation or chunk size changed is emptied (its bytes are stale), an
// image that disappeared is deleted, the rest is loaded into RAM bitmaps.
// Never when it holds dirty chunks (acknowledged writes not yet written
// back): then Open fails (kFailedPrecondition) and says what to do, rather
// than lose them.
//
// Thread model: Start() launches the index writer and the evictor (call it
// after daemonizing); the destructor stops both after flushing the index.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/cache_budget.h"
#include "fs/chunk_index.h"
#include "fs/chunk_sink.h"
#include "fs/chunk_source.h"
#include "fs/evictor.h"
#include "fs/image_cache.h"
#include "fs/write_back.h"

namespace affinity::fs {

struct VmCacheOptions {
  std::string cache_dir;
  std::string vm;
  uint32_t chunk_size = 256 * 1024;
  uint64_t cache_size = 0;  // bytes; 0 = no limit
  WriteBackOptions write_back;
};

// What the storage host says an image is (from GET /v1/vms/{vm}/images).
struct RemoteImage {
  std::string name;
  uint64_t size = 0;
  uint64_t generation = 0;
};

class VmCache {
 public:
  // kPermissionDenied / kIoError with the path when the cache dir is unusable;
  // kUnavailable when another daemon holds the cache's lock.
  // `sink` (may be null: nothing is written back) receives the write-back.
  static Result<std::unique_ptr<VmCache>> Open(const VmCacheOptions& options, const std::vector<RemoteImage>& listing,
                                               ChunkSource* source, ChunkSink* sink = nullptr);
  // The listing recorded by the last run (to mount while the storage host is unreachable).
  static Result<std::vector<RemoteImage>> CachedListing(const VmCacheOptions& options);
  ~VmCache();

  // Starts the index writer, the evictor and the write-back.
  void Start();
  Status Flush() { return index_->Flush(); }
  // Writes (docs/writes.md). Null when opened without a sink.
  WriteBack* write_back() { return write_back_.get(); }

  const std::vector<std::shared_ptr<ImageCache>>& images() const { return images_; }
  std::shared_ptr<ImageCache> Find(const std::string& name) const;
  ChunkIndex& index() { return *index_; }
  AccessState& access() { return access_; }

  // Grants (docs/grants.md): drop every chunk fetched under an aborted
  // migration from every image's data file and from the index. The caller
  // has already revoked access (AccessState::Revoke), so nothing new of that
  // migration can be stored meanwhile.
  Status PurgeMigration(const std::string& migration, ImageCache::Deadline deadline);
  // Drop every cached chunk overlapping [offset, offset+length) of `image`.
  Status InvalidateRange(const std::string& image, uint64_t offset, uint64_t length, ImageCache::Deadline deadline);
  const VmCacheOptions& options() const { return options_; }
  const CacheBudget& budget() const { return *budget_; }

 private:
  VmCache() = default;
  VmCacheOptions options_;
  int lock_fd_ = -1;
  std::unique_ptr<ChunkIndex> index_;
  std::unique_ptr<CacheBudget> budget_;
  std::vector<std::shared_ptr<ImageCache>> images_;
  std::unique_ptr<Evictor> evictor_;
  std::unique_ptr<WriteBack> write_back_;
  AccessState access_;
};

}  // namespace affinity::fs
