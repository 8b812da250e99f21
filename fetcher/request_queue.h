// RequestQueue: which queued request starts next, and whether it may start.
//
// Strict priority (kDemand first, then kCritical ... kBackground), FIFO within
// a priority. A request of a prefetch class (anything but kDemand) may start
// only while fewer than `max_running - reserved_for_demand` transfers run, so
// that many connections are always free for a VM waiting on a read right now;
// nothing starts once `max_running` transfers run. If the reservation would
// leave prefetch no slot at all, prefetch still gets one.
//
// Every entry carries its request's deadline so the owner can fail queued
// requests whose deadline passed (TakeExpired) and sleep no longer than the
// earliest one (EarliestDeadline); both cost O(1) when nothing expired.
//
// Thread safety: none; owned by the fetch-loop thread.
// Failure: none (no allocation failure handling beyond std::bad_alloc).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "fetcher/https_client.h"

namespace affinity::fetcher {

template <typename T>
class RequestQueue {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kClasses = static_cast<size_t>(Priority::kBackground) + 1;

  RequestQueue(int max_running, int reserved_for_demand)
      : max_running_(std::max(1, max_running)),
        prefetch_limit_(std::max(1, max_running_ - std::max(0, reserved_for_demand))) {}

  void Push(Priority p, Clock::time_point deadline, T item) {
    queues_[Index(p)].push_back(Entry{deadline, std::move(item)});
    deadlines_.insert(deadline);
  }

  // The next item allowed to start while `running` transfers run, if any.
  std::optional<T> PopStartable(int running) {
    if (running >= max_running_) return std::nullopt;
    for (size_t c = 0; c < kClasses; ++c) {
      if (queues_[c].empty()) continue;
      if (c != Index(Priority::kDemand) && running >= prefetch_limit_) return std::nullopt;
      Entry e = std::move(queues_[c].front());
      queues_[c].pop_front();
      deadlines_.erase(deadlines_.find(e.deadline));
      return std::move(e.item);
    }
    return std::nullopt;
  }

  // Removes and returns every item whose deadline is at or before `now`.
  std::vector<T> TakeExpired(Clock::time_point now) {
    std::vector<T> out;
    if (deadlines_.empty() || *deadlines_.begin() > now) return out;
    for (auto& q : queues_) {
      for (auto it = q.begin(); it != q.end();) {
        if (it->deadline <= now) {
          deadlines_.erase(deadlines_.find(it->deadline));
          out.push_back(std::move(it->item));
          it = q.erase(it);
        } else {
          ++it;
        }
      }
    }
    return out;
  }

  // Removes and returns everything, most urgent first.
  std::vector<T> TakeAll() {
    std::vector<T> out;
    for (auto& q : queues_) {
      for (auto& e : q) out.push_back(std::move(e.item));
      q.clear();
    }
    deadlines_.clear();
    return out;
  }

  std::optional<Clock::time_point> EarliestDeadline() const {
    if (deadlines_.empty()) return std::nullopt;
    return *deadlines_.begin();
  }

  size_t size(Priority p) const { return queues_[Index(p)].size(); }
  size_t size() const { return deadlines_.size(); }
  bool empty() const { return deadlines_.empty(); }
  int prefetch_limit() const { return prefetch_limit_; }

 private:
  struct Entry {
    Clock::time_point deadline;
    T item;
  };
  static size_t Index(Priority p) { return std::min(static_cast<size_t>(p), kClasses - 1); }

  int max_running_;
  int prefetch_limit_;
  std::array<std::deque<Entry>, kClasses> queues_;
  std::multiset<Clock::time_point> deadlines_;  // one per queued entry
};

}  // namespace affinity::fetcher
