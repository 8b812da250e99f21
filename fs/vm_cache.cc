#include "fs/vm_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>

#include "common/names.h"

namespace affinity::fs {
namespace {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "create cache directory " + path);
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(path + " exists and is not a directory");
  return Status::Ok();
}

std::string VmDir(const VmCacheOptions& o) { return o.cache_dir + "/" + o.vm; }

}  // namespace

Result<std::vector<RemoteImage>> VmCache::CachedListing(const VmCacheOptions& options) {
  std::string path = VmDir(options) + "/index.sqlite";
  if (::access(path.c_str(), R_OK) != 0) return NotFound("no cache index at " + path);
  auto index = ChunkIndex::Open(path);
  if (!index.ok()) return index.status();
  auto images = (*index)->ListImages();
  if (!images.ok()) return images.status();
  std::vector<RemoteImage> out;
  for (const ImageRecord& r : *images) out.push_back({r.name, r.size, r.generation});
  return out;
}

namespace {
// An image about to be emptied or deleted must not hold acknowledged writes.
Status RefuseIfDirty(ChunkIndex& index, const std::string& vm_dir, const std::string& image, const std::string& why) {
  auto dirty = index.CountDirty(image);
  if (!dirty.ok()) return dirty.status();
  if (*dirty == 0) return Status::Ok();
  return FailedPrecondition(image + " " + why + ", but " + std::to_string(*dirty) +
                            " chunks written on this host were never written back to the storage host; refusing to "
                            "drop them. Their bytes are in " + vm_dir + "/data/" + image +
                            " (chunk i at offset i * chunk size; rows with state=2 in " + vm_dir +
                            "/index.sqlite). Restore the image on the storage host to mount and write them back, or "
                            "move the cache directory away to discard them");
}
}  // namespace

Result<std::unique_ptr<VmCache>> VmCache::Open(const VmCacheOptions& options, const std::vector<RemoteImage>& listing,
                                               ChunkSource* source, ChunkSink* sink) {
  Status s = ValidateName("vm", options.vm);
  if (!s.ok()) return s;
  if (options.chunk_size == 0 || (options.chunk_size & (options.chunk_size - 1)) != 0) {
    return InvalidArgument("chunk size must be a power of two");
  }
  for (const std::string& dir : {options.cache_dir, VmDir(options), VmDir(options) + "/data"}) {
    s = MakeDir(dir);
    if (!s.ok()) return s;
  }
  auto cache = std::unique_ptr<VmCache>(new VmCache());
  cache->options_ = options;

  std::string lock_path = VmDir(options) + "/lock";
  cache->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (cache->lock_fd_ < 0) return ErrnoStatus(errno, "open " + lock_path);
  if (::flock(cache->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Unavailable("cache directory " + VmDir(options) + " is in use by another affinityfs");
  }

  auto index = ChunkIndex::Open(VmDir(options) + "/index.sqlite");
  if (!index.ok()) return index.status();
  cache->index_ = std::move(index).value();
  cache->budget_ = std::make_unique<CacheBudget>(options.cache_size == 0 ? UINT64_MAX : options.cache_size);

  auto known = cache->index_->ListImages();
  if (!known.ok()) return known.status();
  std::map<std::string, ImageRecord> previous;
  for (const ImageRecord& r : *known) previous[r.name] = r;

  for (const RemoteImage& remote : listing) {
    s = ValidateName("image", remote.name);
    if (!s.ok()) return s.WithContext("storage host listing");
    if (remote.size / options.chunk_size >= UINT32_MAX) {
      return InvalidArgument("image " + remote.name + " has more than 2^32 chunks; use a larger --chunk-size");
    }
    ImageRecord record{remote.name, remote.size, remote.generation, options.chunk_size};
    std::string data_path = VmDir(options) + "/data/" + remote.name;
    auto file = DataFile::Open(data_path, remote.size);
    if (!file.ok()) return file.status();
    auto image = std::make_shared<ImageCache>(record, *file, cache->index_.get(), source, cache->budget_.get(),
                                              &cache->access_);
    auto prev = previous.find(remote.name);
    if (prev != previous.end() && prev->second == record) {
      auto chunks = cache->index_->LoadChunks(remote.name);
      if (!chunks.ok()) return chunks.status();
      image->LoadPresent(*chunks);
      spdlog::info("{}: {} cached chunks from the previous run", remote.name, chunks->size());
    } else {
      if (prev != previous.end()) {
        s = RefuseIfDirty(*cache->index_, VmDir(options), remote.name, "changed on the storage host");
        if (!s.ok()) return s;
        spdlog::info("{}: changed on the storage host (generation {} -> {}, size {} -> {}, chunk size {} -> {}); "
                     "dropping its cached bytes",
                     remote.name, prev->second.generation, record.generation, prev->second.size, record.size,
                     prev->second.chunk_size, record.chunk_size);
      }
      s = (*file)->Reset(remote.size);
      if (!s.ok()) return s;
      s = cache->index_->ResetImage(record);
      if (!s.ok()) return s;
    }
    previous.erase(remote.name);
    cache->images_.push_back(std::move(image));
  }
  for (const auto& [name, record] : previous) {
    s = RefuseIfDirty(*cache->index_, VmDir(options), name, "is no longer on the storage host");
    if (!s.ok()) return s;
    spdlog::info("{}: no longer on the storage host; deleting its cache", name);
    s = cache->index_->DropImage(name);
    if (!s.ok()) return s;
    std::error_code ec;
    std::filesystem::remove(VmDir(options) + "/data/" + name, ec);
  }
  if (sink != nullptr) cache->write_back_ = std::make_unique<WriteBack>(cache->images_, sink, options.write_back);
  cache->evictor_ = std::make_unique<Evictor>(cache->budget_.get(), [c = cache.get()] { return c->images_; });
  return cache;
}

VmCache::~VmCache() {
  if (evictor_) evictor_->Stop();
  if (write_back_) write_back_->Stop();  // its last completions still record clean rows
  if (index_) {
    Status s = index_->Flush();
    if (!s.ok()) spdlog::error("final cache index flush: {}", s.ToString());
  }
  images_.clear();
  index_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void VmCache::Start() {
  index_->StartWriter();
  evictor_->Start();
  if (write_back_) write_back_->Start();
}

std::shared_ptr<ImageCache> VmCache::Find(const std::string& name) const {
  for (const auto& image : images_) {
    if (image->record().name == name) return image;
  }
  return nullptr;
}

Status VmCache::PurgeMigration(const std::string& migration, ImageCache::Deadline deadline) {
  for (const auto& image : images_) {
    Status s = image->PurgeMigration(migration, deadline);
    if (!s.ok()) return s;
  }
  return index_->PurgeMigration(migration);
}

Status VmCache::InvalidateRange(const std::string& image, uint64_t offset, uint64_t length,
                                ImageCache::Deadline deadline) {
  auto cache = Find(image);
  if (!cache) return Status::Ok();  // not an image of this mount: nothing cached
  return cache->InvalidateRange(offset, length, deadline);
}

}  // namespace affinity::fs
