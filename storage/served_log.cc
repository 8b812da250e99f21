#include "storage/served_log.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace affinity::storage {

void ServedLog::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      lock.unlock();
      if (Status s = Flush(); !s.ok()) spdlog::warn("served log: {}", s.ToString());
      lock.lock();
    }
  });
}

void ServedLog::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (Status s = Flush(); !s.ok()) spdlog::warn("served log: {}", s.ToString());
}

void ServedLog::Note(const std::string& holder, const std::string& vm, const std::string& image, ByteRange range) {
  if (holder.empty() || range.length == 0) return;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::lock_guard lock(mu_);
  if (ring_.size() >= capacity_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ring_.push_back(ServedRead{holder, vm, image, range.offset, range.length, now});
}

Status ServedLog::Flush() {
  std::lock_guard flush(flush_mu_);
  std::vector<ServedRead> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(ring_);
  }
  if (batch.empty()) return Status::Ok();
  return log_->RecordServed(batch);
}

}  // namespace affinity::storage
