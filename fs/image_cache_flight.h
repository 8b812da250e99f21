// ImageCache::Flight: one range of chunks being fetched (or claimed by a
// write, or punched by an eviction), which readers of those chunks wait on.
// Internal to image_cache.cc and image_cache_write.cc.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fs/image_cache.h"

namespace affinity::fs {

struct ImageCache::Flight {
  ByteRange range;
  uint32_t first = 0;
  uint32_t count = 0;
  ChunkOrigin origin = ChunkOrigin::kDemand;
  std::string migration;  // AccessState::tag() when the fetch started
  bool fetch = false;     // a fetch (not a write's claim, not an eviction)
  // Guarded by ImageCache::mu_: the fetch landed and is storing the chunks it
  // still owns; until then a write that replaces a chunk whole may take it over.
  bool storing = false;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;                               // guarded by mu
  Status status;                                   // guarded by mu
  std::shared_ptr<std::vector<uint8_t>> unstored;  // guarded by mu; bytes the disk refused
  // Set before the fetch starts, called once it landed (prefetch engine).
  std::function<void(const Status&)> on_done;
};

}  // namespace affinity::fs
