// ChunkSink: where the write-back sends dirty bytes (the storage host).
//
// Store() sends one contiguous byte range of one image and answers exactly
// once, on any thread, with ok only when the storage host said the bytes are
// durable there (its PUT answers after an fdatasync). Retries within the
// deadline live behind the interface (fetcher/): a PUT is idempotent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace affinity::fs {

class ChunkSink {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  virtual ~ChunkSink() = default;
  // `done` must not block; it runs on the sink's thread.
  virtual void Store(const std::string& image, uint64_t offset, std::string bytes, Deadline deadline,
                     std::function<void(const Status&)> done) = 0;
};

}  // namespace affinity::fs
