// Metrics: what the storage host served, per image (GET /v1/metrics).
//
// Tests use these counters to prove exactly what a destination fetched, and
// operators to see load. A *data request* is an image GET that carries a
// body; it is counted, with its body length, when its reply is committed
// (headers built, digest computed), before the first byte goes out. HEAD
// requests and refusals are not data requests; every refusal (4xx/5xx)
// counts in errors_total.
//
// Thread safety: any thread (one mutex; the critical section is a map update).
// Failure: none (counters only).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace affinity::storage {

class Metrics {
 public:
  // `vm_image` is "vm/image".
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
