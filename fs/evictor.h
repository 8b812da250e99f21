// Evictor: keeps a cache's bytes under its limit by dropping the least
// recently read clean chunks (LRU by the budget's access clock).
//
// Policy lives here, storage in ImageCache: when usage passes the limit the
// evictor collects every unpinned present chunk of every image, sorts them
// by last access and evicts oldest-first until usage is below the low-water
// mark (90% of the limit), so it runs in bursts rather than per chunk.
// Chunks being read (pinned) or fetched are skipped.
//
// Thread model: one thread, started by Start() and joined by Stop()/destructor.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "fs/cache_budget.h"
#include "fs/image_cache.h"

namespace affinity::fs {

class Evictor {
 public:
  using ImageList = std::function<std::vector<std::shared_ptr<ImageCache>>()>;
  Evictor(CacheBudget* budget, ImageList images) : budget_(budget), images_(std::move(images)) {}
  ~Evictor() { Stop(); }

  void Start();
  void Stop();
  // One eviction pass down to the low-water mark; returns bytes freed.
  uint64_t EvictOnce();

 private:
  void Loop();
  CacheBudget* budget_;
  ImageList images_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace affinity::fs
