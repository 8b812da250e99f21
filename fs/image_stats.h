// ImageStats: the counters behind one image's user.affinity.* xattrs.
//
// Definitions (docs/xattrs.md): a read request is a *hit* when every chunk it
// needs was present when it arrived, else a *miss*; miss latency is the time
// from arrival to the bytes being ready. bytes_fetched counts verified bytes
// received from the storage host, split by why they were asked for.
//
// Thread safety: all fields are atomics, updated with relaxed ordering
// (statistics, not synchronization).
#pragma once

#include <atomic>
#include <cstdint>

#include "fs/latency_histogram.h"

namespace affinity::fs {

struct ImageStats {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> bytes_from_cache{0};   // bytes of hit reads
  std::atomic<uint64_t> bytes_after_miss{0};   // bytes of miss reads
  std::atomic<uint64_t> bytes_demand{0};       // fetched for a waiting read
  std::atomic<uint64_t> bytes_readahead{0};    // fetched ahead of a sequential reader
  std::atomic<uint64_t> bytes_prefetch{0};     // fetched by the profile-driven prefetch engine
  std::atomic<uint64_t> fetch_requests{0};
  std::atomic<uint64_t> fetch_errors{0};
  std::atomic<uint64_t> corrupt_chunks{0};     // cache digest mismatches found (never served)
  std::atomic<uint64_t> evicted_bytes{0};
  std::atomic<uint64_t> store_errors{0};       // cache file writes that failed (e.g. disk full)
  std::atomic<int64_t> inflight_fetches{0};
  // Writes (docs/writes.md).
  std::atomic<uint64_t> write_requests{0};
  std::atomic<uint64_t> bytes_written{0};      // acknowledged write bytes
  std::atomic<uint64_t> writeback_requests{0}; // PUTs that succeeded
  std::atomic<uint64_t> writeback_bytes{0};
  std::atomic<uint64_t> writeback_errors{0};   // PUTs that failed (retried later, nothing dropped)
  std::atomic<uint64_t> flushes{0};            // fsync/fdatasync calls answered
  std::atomic<uint64_t> last_flush_us{0};      // how long the last one took
  LatencyHistogram miss_latency_us;

  static void Add(std::atomic<uint64_t>& counter, uint64_t n) { counter.fetch_add(n, std::memory_order_relaxed); }
};

}  // namespace affinity::fs
