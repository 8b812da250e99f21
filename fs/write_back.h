// WriteBack: sends the dirty chunks of one VM's images to the storage host
// (docs/writes.md).
//
// One thread. Every wake-up it takes runs of dirty chunks from each image
// (ImageCache::TakeWriteBackRuns: dirty for at least `delay`, or all of them
// while a flush waits), reads their bytes from the cache file and PUTs them
// through the ChunkSink, at most `max_inflight` at a time; completions come
// back to this thread and go to ImageCache::FinishWriteBack. A failed PUT
// leaves its chunks dirty (nothing is ever dropped) and pauses new runs for
// a backoff that doubles up to 5 s, so a dead storage host is not hammered.
//
// Flush(image, deadline) is fsync: it takes the image's write sequence as a
// barrier, makes the write-back take everything at once, and waits until
// every write up to the barrier is on the storage host.
//
// Thread safety: Wake/Flush from any thread. Start once; Stop (or the
// destructor) waits for PUTs in flight to finish.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "fs/chunk_sink.h"
#include "fs/image_cache.h"

namespace affinity::fs {

struct WriteBackOptions {
  // How long a chunk stays dirty before the write-back takes it unasked:
  // rewrites within it (a journal, a superblock) cost one PUT, not many.
  std::chrono::milliseconds delay{100};
  size_t max_inflight = 4;
  uint64_t max_run_bytes = 4ull << 20;  // the storage host takes up to 16 MiB per PUT
  std::chrono::milliseconds request_timeout{30000};
};

class WriteBack {
 public:
  WriteBack(std::vector<std::shared_ptr<ImageCache>> images, ChunkSink* sink, WriteBackOptions options);
  ~WriteBack();
  WriteBack(const WriteBack&) = delete;
  WriteBack& operator=(const WriteBack&) = delete;

  void Start();
  // Stops taking new runs and waits for the PUTs in flight.
  void Stop();
  // A write made chunks dirty.
  void Wake();
  // fsync: ok once every write to `image` acknowledged before the call is on
  // the storage host; kIoError (naming the last write-back error) if that did
  // not happen by the deadline. Nothing is dropped either way.
  Status Flush(ImageCache& image, ImageCache::Deadline deadline);
  // Every image (clean unmount).
  Status FlushAll(ImageCache::Deadline deadline);

 private:
  struct Completion {
    std::shared_ptr<ImageCache> image;
    WriteBackRun run;
    Status status;
  };
  void Loop();
  // Under mu_: starts as many runs as the limits allow.
  void StartRunsLocked(std::unique_lock<std::mutex>& lock);

  const std::vector<std::shared_ptr<ImageCache>> images_;
  ChunkSink* const sink_;
  const WriteBackOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // the loop waits here
  std::condition_variable idle_cv_;   // Stop waits here for inflight_ == 0
  bool stop_ = false;                 // guarded by mu_
  bool woken_ = false;                // guarded by mu_
  int flush_waiters_ = 0;             // guarded by mu_
  size_t inflight_ = 0;               // guarded by mu_
  std::vector<Completion> completions_;  // guarded by mu_
  std::chrono::milliseconds backoff_{0};           // guarded by mu_
  std::chrono::steady_clock::time_point paused_until_;  // guarded by mu_
  std::string last_error_;            // guarded by mu_
  std::thread thread_;
};

}  // namespace affinity::fs
