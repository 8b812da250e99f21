// AccessRecorder: what the VM read (and, later, wrote) through this mount,
// for the profiler (docs/profile.md, "Recording").
//
// Read path: Record() appends {image, offset, length, op, time since the
// session started} to a bounded in-memory ring under a short mutex and
// returns; nothing else happens on the read path. When the ring is full
// (the recorder thread fell behind) the access is dropped and counted.
//
// Recorder thread, every `flush_interval`: moves the ring into
// CACHE/<vm>/accesses.sqlite, numbering each access in its session; every
// `upload_interval`: sends the oldest rows to the storage host
// (POST /v1/vms/{vm}/accesses, under this host's grant) in batches, one
// session at a time, and deletes them once the storage host has them. A
// storage host that is down or refuses only delays the upload: the rows stay
// on disk, across restarts (a new daemon uploads what an old one left).
// Stop() drains the ring to disk and tries one last upload (2 s at most, so
// an unreachable storage host does not hold up an unmount), so a clean
// unmount loses nothing; kill -9 loses at most `flush_interval` of accesses.
//
// A session is one mount of the VM: a new id (profile::NewSessionId) and the
// wall-clock start for time-of-day patterns.
//
// Thread safety: Record/stats from any thread; Start/Stop from the owner.
// Failure: Open returns the SQLite error with the path; later SQLite or
// network errors are logged and counted, never raised into the read path.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "fetcher/https_client.h"
#include "profile/access_batch.h"

namespace affinity::fs {

struct AccessRecorderOptions {
  std::string db_path;                // CACHE/<vm>/accesses.sqlite
  std::string vm;
  std::vector<std::string> images;    // Record()'s image index names these
  profile::SessionKind kind = profile::SessionKind::kStart;  // a VM start or a migration arrival
  size_t ring_capacity = 1 << 16;
  size_t batch_records = 4096;        // at most profile::kMaxRecordsPerBatch
  std::chrono::milliseconds flush_interval{1000};
  std::chrono::milliseconds upload_interval{5000};
  std::chrono::milliseconds request_timeout{10000};
};

struct AccessRecorderStats {
  uint64_t recorded = 0;        // accepted into the ring
  uint64_t dropped = 0;         // ring full
  uint64_t persisted = 0;       // written to accesses.sqlite
  uint64_t uploaded = 0;        // accepted by the storage host (duplicates included)
  uint64_t upload_errors = 0;   // failed upload attempts
  uint64_t pending = 0;         // on disk, not yet uploaded
};

class AccessRecorder {
 public:
  static Result<std::unique_ptr<AccessRecorder>> Open(AccessRecorderOptions options);
  ~AccessRecorder();
  AccessRecorder(const AccessRecorder&) = delete;
  AccessRecorder& operator=(const AccessRecorder&) = delete;

  void Record(uint32_t image, uint64_t offset, uint64_t length, profile::AccessOp op);

  // `client` sends the uploads (its authorization carries the grant) and
  // must outlive Stop().
  void Start(fetcher::HttpsClient* client);
  void Stop();
  // Runs one flush and upload pass on the caller's thread (tests,
  // shutdown); each upload request waits at most `timeout`.
  void FlushAndUpload(std::chrono::milliseconds timeout);

  AccessRecorderStats stats() const;
  const std::string& session() const { return session_; }

 private:
  struct Entry {
    uint32_t image;
    profile::AccessOp op;
    uint64_t offset, length, t_us;
  };

  explicit AccessRecorder(AccessRecorderOptions options, std::unique_ptr<SqliteDb> db);
  void Loop();
  Status Flush();
  Status UploadOnce(std::chrono::milliseconds timeout, bool* more);

  const AccessRecorderOptions options_;
  const std::string session_;
  const std::chrono::steady_clock::time_point started_;
  fetcher::HttpsClient* client_ = nullptr;

  mutable std::mutex ring_mu_;
  std::vector<Entry> ring_;  // guarded by ring_mu_ (a FIFO: pending_ entries from head_)
  size_t head_ = 0;          // guarded by ring_mu_
  size_t pending_ = 0;       // guarded by ring_mu_
  std::atomic<uint64_t> recorded_{0}, dropped_{0};

  std::mutex db_mu_;               // one pass at a time (thread, Stop, tests)
  std::unique_ptr<SqliteDb> db_;   // guarded by db_mu_
  uint64_t next_seq_ = 0;          // guarded by db_mu_
  std::atomic<uint64_t> persisted_{0}, uploaded_{0}, upload_errors_{0};
  std::atomic<uint64_t> on_disk_{0};  // rows in accesses: counted at Open, then kept up to date

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace affinity::fs
