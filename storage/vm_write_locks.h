// VmWriteLocks: makes a commit atomic with respect to writes of the same VM.
//
// A write holds its VM's lock shared from the moment its grant is checked
// until its blocks are recorded in the ChunkTracker; a commit holds it
// exclusively while it hands ownership over and computes the stale ranges.
// So no write authorized under the old owner can land after the destination
// was told what is stale (docs/grants.md, "No stale reads at commit").
//
// Thread safety: every method from any thread. Entries are never removed
// (one small mutex per VM ever written or committed).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

namespace affinity::storage {

class VmWriteLocks {
 public:
  std::shared_mutex& For(const std::string& vm) {
    std::lock_guard lock(mu_);
    auto& slot = locks_[vm];
    if (!slot) slot = std::make_unique<std::shared_mutex>();
    return *slot;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::shared_mutex>> locks_;  // guarded by mu_
};

}  // namespace affinity::storage
