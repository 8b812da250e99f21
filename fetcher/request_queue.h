// RequestQueue: which queued request starts next, and whether it may start.
//
// Strict priority (kDemand first), FIFO within a priority. A request of a
// prefetch class (anything but kDemand) may start only while fewer than
// `max_running - reserved_for_demand` transfers run, so some connections are
// always free for a VM that is waiting on a read right now.
//
// Thread safety: none; owned by the fetch-loop thread.
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <optional>

#include "fetcher/https_client.h"

namespace affinity::fetcher {

template <typename T>
class RequestQueue {
 public:
  static constexpr size_t kClasses = 5;

  RequestQueue(int max_running, int reserved_for_demand)
      : max_running_(max_running), prefetch_limit_(std::max(1, max_running - reserved_for_demand)) {}

  void Push(Priority p, T item) { queues_[static_cast<size_t>(p)].push_back(std::move(item)); }

  // The next item allowed to start given `running` transfers, if any.
  std::optional<T> PopStartable(int running) {
    if (running >= max_running_) return std::nullopt;
    for (size_t c = 0; c < kClasses; ++c) {
      if (queues_[c].empty()) continue;
      if (c != 0 && running >= prefetch_limit_) return std::nullopt;
      T item = std::move(queues_[c].front());
      queues_[c].pop_front();
      return item;
    }
    return std::nullopt;
  }

  // Removes and returns every queued item matching `pred` (e.g. expired).
  template <typename Pred>
  std::deque<T> RemoveIf(Pred pred) {
    std::deque<T> out;
    for (auto& q : queues_) {
      for (auto it = q.begin(); it != q.end();) {
        if (pred(*it)) {
          out.push_back(std::move(*it));
          it = q.erase(it);
        } else {
          ++it;
        }
      }
    }
    return out;
  }

  size_t size(Priority p) const { return queues_[static_cast<size_t>(p)].size(); }
  size_t prefetch_size() const {
    size_t n = 0;
    for (size_t c = 1; c < kClasses; ++c) n += queues_[c].size();
    return n;
  }

 private:
  int max_running_;
  int prefetch_limit_;
  std::array<std::deque<T>, kClasses> queues_;
};

}  // namespace affinity::fetcher
