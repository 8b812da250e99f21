// PrefetchEngine: the destination's predictive prefetcher (SPEC §5,
// docs/profile.md "The engine").
//
// On start it loads the VM's profile (from the storage host in the
// handshake, or a file), builds the plan (profile/prefetch_plan.h) and
// fetches it class by class (critical -> early -> successor -> background),
// adjacent chunks of a class merged into one range request.
//
// Demand first: the engine keeps its queue itself and hands the fetcher at
// most `window` prefetch requests at a time (never more than the fetcher's
// prefetch slots) and at most max(1 MiB, 2 x bandwidth x RTT) of prefetch
// bytes, so a prefetch never waits in the fetcher's queue ahead of a demand
// read, and a demand reply never queues on the link behind more than that;
// demand requests also have connections reserved for them. A
// read of a chunk the engine has queued but not sent is fetched as demand at
// once (counted in demand_misses_while_queued, and the window grows: the
// engine is behind). A read that misses a chunk the plan did not have halves
// the window for a while (the VM does something new; prefetch yields the
// link; counted in `yields`), except while critical chunks are still queued
// (the VM needs those next); the window grows back by one per quiet tick.
//
// Adaptive (profile/prefetch_policy.h): each block is fetched only if its
// calibrated probability passes the cost/benefit threshold; each prefetched
// chunk matures at its due time plus a grace and tells the policy whether it
// was used. Reads also trigger successors: the profile's edges out of a
// block read for the first time are queued in the successor class.
// `adaptive = false` fetches the whole plan in order with a fixed window and
// no successors: the "replay the last session" baseline of the benchmarks.
//
// Thread safety: OnRead from FUSE workers, completions from the fetch
// thread, Stats from anywhere; one mutex, never held while calling into the
// cache's fetch path... except for the presence checks (ImageCache's own
// short lock, taken after ours: lock order engine -> ImageCache).
#pragma once

#include <roaring/roaring.hh>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "fs/vm_cache.h"
#include "profile/prefetch_plan.h"
#include "profile/prefetch_policy.h"
#include "profile/profile.h"

namespace affinity::fs {

struct PrefetchEngineOptions {
  profile::PlanOptions plan;
  bool adaptive = true;
  uint32_t max_window = 6;                     // at most the fetcher's prefetch slots
  uint64_t background_bytes_per_s = 0;         // background class cap; 0 = no background hydration
  std::chrono::milliseconds fetch_timeout{60'000};
  std::chrono::milliseconds maturity_grace{10'000};
  std::chrono::milliseconds tick{20};
  double link_bytes_per_ms = 125'000;          // assumed link rate (1 Gbit/s) for the cost model
};

struct PrefetchStats {
  std::string state = "off";   // off | loading | running | idle | error
  std::string error;
  std::string profile_id;
  uint64_t planned_bytes = 0;
  uint64_t queued = 0;         // chunks waiting in the engine's queues
  uint64_t inflight = 0;       // prefetch requests running
  uint64_t done_bytes = 0;     // fetched by the engine
  uint64_t used_bytes = 0;     // fetched by the engine, then read
  uint64_t wasted_bytes = 0;   // fetched by the engine, not read by their due time + grace
  uint64_t skipped = 0;        // chunks the cost/benefit model declined
  uint64_t demand_misses_while_queued = 0;
  uint64_t first_reads = 0;    // chunks read for the first time this session
  uint64_t first_read_hits = 0;  // ... that were already in the cache
  uint32_t window = 0;
  uint64_t yields = 0;         // ticks in which prefetch halved its window for demand
  double link_rtt_ms = 0;      // estimated from prefetch replies (the cost model's RTT)
  double demand_busy = 0;      // share of recent ticks in which demand missed unplanned chunks
  double accuracy() const { return done_bytes == 0 ? 0 : static_cast<double>(used_bytes) / done_bytes; }
  double coverage() const { return first_reads == 0 ? 0 : static_cast<double>(first_read_hits) / first_reads; }
};

class PrefetchEngine {
 public:
  // Gets the encoded profile and calls `done` with it exactly once, on any
  // thread, possibly before returning (a file) or later (a request).
  using LoadDone = std::function<void(Result<std::string>)>;
  using Loader = std::function<void(LoadDone done)>;

  PrefetchEngine(VmCache* cache, PrefetchEngineOptions options);
  ~PrefetchEngine();
  PrefetchEngine(const PrefetchEngine&) = delete;
  PrefetchEngine& operator=(const PrefetchEngine&) = delete;

  // Starts the engine thread, which first runs `load` and waits for its
  // result (or for Stop: a storage host that does not answer does not hold
  // up an unmount).
  void Start(Loader load);
  void Stop();

  // Every read the kernel sends, before it is served (FUSE worker threads).
  void OnRead(uint32_t image, uint64_t offset, uint64_t length);

  PrefetchStats Stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    uint32_t image;
    uint32_t chunk;
    profile::PrefetchClass cls;
    float probability;
    Clock::time_point due;
  };
  struct ImageState {
    std::shared_ptr<ImageCache> cache;
    int profile_index = -1;
    Roaring queued, issued, prefetched, used, touched;
  };
  struct Matured {
    uint32_t image, chunk;
    profile::PrefetchClass cls;
    float probability;
  };

  void Run(Loader load);
  Status LoadPlan(const std::string& encoded);
  // Under mu_: the next item to fetch, with adjacent items of its class merged.
  bool NextRunLocked(Item& first, uint32_t& last_chunk);
  void IssueLocked(std::unique_lock<std::mutex>& lock, const Item& item, uint32_t last_chunk);
  void OnFetched(uint32_t image, uint32_t first, uint32_t last, const Status& status, Clock::duration took);
  void MatureLocked(Clock::time_point now);
  void QueueSuccessorsLocked(uint32_t image, uint32_t chunk);
  uint64_t ChunkBytes(uint32_t image, uint32_t chunk) const;
  uint64_t InflightByteCap() const;  // under mu_
  bool CriticalQueuedLocked();       // under mu_: critical-class chunks still wait to be issued

  VmCache* const cache_;
  const PrefetchEngineOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                              // guarded by mu_
  std::optional<Result<std::string>> loaded_;                      // guarded by mu_
  std::vector<ImageState> images_;                                 // guarded by mu_
  std::unique_ptr<profile::Profile> profile_;                      // set once by the engine thread
  std::unique_ptr<profile::SuccessorIndex> successors_;
  std::array<std::deque<Item>, profile::kPrefetchClasses> queues_; // guarded by mu_
  std::unordered_map<uint64_t, Item> meta_;                        // guarded by mu_; (image<<32|chunk) -> item
  std::multimap<Clock::time_point, Matured> maturing_;             // guarded by mu_
  profile::PrefetchPolicy policy_;                                 // guarded by mu_
  PrefetchStats stats_;                                            // guarded by mu_
  int64_t inflight_ = 0;                                           // guarded by mu_; may dip below 0 briefly
  int64_t inflight_bytes_ = 0;                                     // guarded by mu_; idem
  uint64_t unplanned_misses_ = 0;                                  // guarded by mu_; since the last tick
  double background_tokens_ = 0;                                   // guarded by mu_
  double rtt_ms_ = -1;                                             // guarded by mu_; EWMA, -1 = no sample yet
  double demand_busy_ = 0;                                         // guarded by mu_; EWMA over ticks
  std::thread thread_;
};

}  // namespace affinity::fs
