// ServedLog: what the storage host itself served, for the profiler
// (docs/profile.md, "What the storage host serves").
//
// A destination normally uploads what its VM read; the storage host also
// notes every range it serves under a grant (holder, vm, image, range, time),
// so a host that never uploads (an older affinityfs, a host that died before
// its upload, another client) still teaches the profile. The data path only
// appends to a bounded ring under a short mutex (full: the note is dropped and
// counted); a thread moves the ring into profile.sqlite every second.
// BuildProfile gets these as sessions only where the holder uploaded nothing
// for that time (AccessLog::ServedSessions), so nothing is counted twice.
//
// Thread safety: Note from any thread; Start/Stop from one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/byte_range.h"
#include "storage/access_log.h"

namespace affinity::storage {

class ServedLog {
 public:
  explicit ServedLog(AccessLog* log, size_t capacity = 1 << 16) : log_(log), capacity_(capacity) {}
  ~ServedLog() { Stop(); }
  ServedLog(const ServedLog&) = delete;
  ServedLog& operator=(const ServedLog&) = delete;

  void Start();
  // Flushes what is in the ring and stops the thread.
  void Stop();
  void Note(const std::string& holder, const std::string& vm, const std::string& image, ByteRange range);
  // Moves the ring to profile.sqlite now.
  Status Flush();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  AccessLog* const log_;
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // guarded by mu_
  std::vector<ServedRead> ring_;     // guarded by mu_
  std::mutex flush_mu_;              // one flush at a time
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace affinity::storage
