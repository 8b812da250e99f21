// Metrics: what the storage host served, per image (GET /v1/metrics).
//
// Tests use these counters to prove exactly what a destination fetched, and
// operators to see load. Counts data requests that carried a body and the
// body bytes sent.
//
// Thread safety: any thread (one mutex; the critical section is a map update).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace affinity::storage {

class Metrics {
 public:
  void CountData(const std::string& vm_image, uint64_t bytes);
  void CountError();
  // {"images":{"vm/img":{"requests":N,"bytes":M}},"requests_total":N,"bytes_total":M,"errors_total":E}
  std::string ToJson() const;

 private:
  struct Counter {
    uint64_t requests = 0;
    uint64_t bytes = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Counter> images_;  // guarded by mu_
  uint64_t errors_ = 0;                    // guarded by mu_
};

}  // namespace affinity::storage
