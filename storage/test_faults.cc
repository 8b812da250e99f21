#include "storage/test_faults.h"

#include <charconv>
#include <string_view>

namespace affinity::storage {

Status TestFaults::Add(const std::string& spec) {
  constexpr std::string_view kCorrupt = "corrupt-body:";
  if (spec.rfind(kCorrupt, 0) == 0) {
    int64_t n = 0;
    std::string_view num = std::string_view(spec).substr(kCorrupt.size());
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (num.empty() || ec != std::errc() || p != num.data() + num.size() || n < 0) {
      return InvalidArgument("--test-fault '" + spec + "': expected corrupt-body:N with N >= 0");
    }
    corrupt_left_ += n;
    return Status::Ok();
  }
  return InvalidArgument("unknown --test-fault '" + spec + "' (known: corrupt-body:N)");
}

bool TestFaults::TakeCorruption() {
  int64_t left = corrupt_left_.load();
  while (left > 0) {
    if (corrupt_left_.compare_exchange_weak(left, left - 1)) return true;
  }
  return false;
}

std::chrono::microseconds TestFaults::ReplyDelay(uint64_t bytes) {
  if (bandwidth_ == 0) return delay_;
  const auto now = std::chrono::steady_clock::now();
  const auto transfer = std::chrono::microseconds(bytes * 1'000'000 / bandwidth_);
  std::lock_guard lock(link_mu_);
  link_free_at_ = std::max(link_free_at_, now) + transfer;
  return delay_ + std::chrono::duration_cast<std::chrono::microseconds>(link_free_at_ - now);
}

}  // namespace affinity::storage
