#include "storage/connection_registry.h"

namespace affinity::storage {

std::optional<uint64_t> ConnectionRegistry::Add(std::weak_ptr<HttpsSession> session) {
  std::lock_guard lock(mu_);
  if (open_.size() >= max_) return std::nullopt;
  uint64_t id = next_id_++;
  open_.emplace(id, std::move(session));
  return id;
}

void ConnectionRegistry::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  open_.erase(id);
  if (open_.empty()) empty_cv_.notify_all();
}

std::vector<std::shared_ptr<HttpsSession>> ConnectionRegistry::Snapshot() const {
  std::vector<std::shared_ptr<HttpsSession>> live;
  std::lock_guard lock(mu_);
  for (const auto& [id, weak] : open_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

bool ConnectionRegistry::WaitEmpty(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return empty_cv_.wait_until(lock, deadline, [&] { return open_.empty(); });
}

size_t ConnectionRegistry::size() const {
  std::lock_guard lock(mu_);
  return open_.size();
}

}  // namespace affinity::storage
