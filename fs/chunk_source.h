// ChunkSource: where the cache gets bytes it does not have.
//
// The cache asks for one byte range of one image at a time (already coalesced
// over adjacent missing chunks) with a priority and an overall deadline; the
// source answers exactly once, on any thread, with exactly the bytes of the
// range (digest-verified) or a Status saying why not. Retry and failover live
// behind this interface (fetcher/), so the cache never sees a transient error
// that a retry could have hidden.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/byte_range.h"
#include "common/status.h"
#include "fetcher/https_client.h"

namespace affinity::fs {

class ChunkSource {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  using Done = std::function<void(Result<std::vector<uint8_t>>)>;

  virtual ~ChunkSource() = default;
  // `done` must not block; it runs on the source's thread.
  virtual void Fetch(const std::string& image, ByteRange range, fetcher::Priority priority, Deadline deadline,
                     Done done) = 0;
};

}  // namespace affinity::fs
