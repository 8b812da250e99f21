// ConnectionRegistry: the open connections of an HttpsServer, so that a stop
// can reach every one of them and then wait (bounded) until all have ended,
// and so that --max-connections can be enforced at accept time.
//
// A session registers right after it is accepted and removes itself from its
// destructor; the registry holds weak references only, so it never keeps a
// connection alive.
//
// Thread safety: every method from any thread (one mutex + condition
// variable). Remove() is called from session destructors on I/O threads.
// Failure: Add() returns nullopt when the limit is reached (the caller
// closes that connection).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace affinity::storage {

class HttpsSession;

class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(size_t max_connections) : max_(max_connections) {}

  std::optional<uint64_t> Add(std::weak_ptr<HttpsSession> session);
  void Remove(uint64_t id);
  // The sessions still alive, to be told to stop.
  std::vector<std::shared_ptr<HttpsSession>> Snapshot() const;
  // True once no session is registered; false if `deadline` passed first.
  bool WaitEmpty(std::chrono::steady_clock::time_point deadline);
  size_t size() const;

 private:
  const size_t max_;
  mutable std::mutex mu_;
  std::condition_variable empty_cv_;
  uint64_t next_id_ = 1;                                  // guarded by mu_
  std::map<uint64_t, std::weak_ptr<HttpsSession>> open_;  // guarded by mu_
};

}  // namespace affinity::storage
