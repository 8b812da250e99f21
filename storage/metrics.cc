#include "storage/metrics.h"

#include <nlohmann/json.hpp>

namespace affinity::storage {

void Metrics::CountData(const std::string& vm_image, uint64_t bytes) {
  std::lock_guard lock(mu_);
  Counter& c = images_[vm_image];
  c.requests++;
  c.bytes += bytes;
}

void Metrics::CountError() {
  std::lock_guard lock(mu_);
  errors_++;
}

std::string Metrics::ToJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json images = nlohmann::json::object();
  uint64_t requests = 0, bytes = 0;
  for (const auto& [name, c] : images_) {
    images[name] = {{"requests", c.requests}, {"bytes", c.bytes}};
    requests += c.requests;
    bytes += c.bytes;
  }
  nlohmann::json doc = {
      {"images", images}, {"requests_total", requests}, {"bytes_total", bytes}, {"errors_total", errors_}};
  return doc.dump();
}

}  // namespace affinity::storage
