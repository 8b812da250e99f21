#include "fs/write_back.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace affinity::fs {
namespace {
constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);

uint64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}
}  // namespace

WriteBack::WriteBack(std::vector<std::shared_ptr<ImageCache>> images, ChunkSink* sink, WriteBackOptions options)
    : images_(std::move(images)), sink_(sink), options_(options) {}

WriteBack::~WriteBack() { Stop(); }

void WriteBack::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void WriteBack::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WriteBack::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

Status WriteBack::Flush(ImageCache& image, ImageCache::Deadline deadline) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t barrier = image.WriteSeq();
  {
    std::lock_guard lock(mu_);
    ++flush_waiters_;
    woken_ = true;
    paused_until_ = std::min(paused_until_, t0);  // a flush retries at once, then backs off again
  }
  cv_.notify_all();
  const bool done = image.WaitWrittenBack(barrier, deadline);
  std::string last_error;
  {
    std::lock_guard lock(mu_);
    --flush_waiters_;
    last_error = last_error_;
  }
  ImageStats::Add(image.stats().flushes, 1);
  image.stats().last_flush_us.store(MicrosSince(t0), std::memory_order_relaxed);
  if (done) return Status::Ok();
  return IoError(image.record().name + ": " + std::to_string(image.dirty_bytes()) +
                 " dirty bytes were not written back to the storage host before the --timeout deadline (last "
                 "write-back error: " +
                 (last_error.empty() ? "none" : last_error) + "); they stay in the cache and are retried");
}

Status WriteBack::FlushAll(ImageCache::Deadline deadline) {
  Status first;
  for (const auto& image : images_) {
    Status s = Flush(*image, deadline);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

void WriteBack::StartRunsLocked(std::unique_lock<std::mutex>& lock) {
  const auto now = std::chrono::steady_clock::now();
  if (stop_ || now < paused_until_) return;
  const bool everything = flush_waiters_ > 0;
  for (const auto& image : images_) {
    if (inflight_ >= options_.max_inflight || stop_) return;
    auto runs = image->TakeWriteBackRuns(now - options_.delay, everything, options_.max_run_bytes,
                                         options_.max_inflight - inflight_);
    inflight_ += runs.size();
    lock.unlock();
    for (WriteBackRun& run : runs) {
      std::string bytes(run.length, '\0');
      Status read = image->data_file().ReadAll(
          run.offset, std::span(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size()));
      auto finish = [this, image, run](const Status& status) {
        {
          std::lock_guard done_lock(mu_);
          completions_.push_back(Completion{image, run, status});
        }
        cv_.notify_all();
      };
      if (!read.ok()) {
        finish(read.WithContext("reading dirty bytes for the write-back"));
        continue;
      }
      sink_->Store(image->record().name, run.offset, std::move(bytes),
                   std::chrono::steady_clock::now() + options_.request_timeout, std::move(finish));
    }
    lock.lock();
  }
}

void WriteBack::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    while (!completions_.empty()) {
      std::vector<Completion> batch = std::move(completions_);
      completions_.clear();
      lock.unlock();
      for (const Completion& c : batch) c.image->FinishWriteBack(c.run, c.status);
      lock.lock();
      for (const Completion& c : batch) {
        --inflight_;
        if (c.status.ok()) {
          backoff_ = std::chrono::milliseconds(0);
          continue;
        }
        last_error_ = c.status.ToString();
        backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds(kMinBackoff), std::chrono::milliseconds(kMaxBackoff));
        paused_until_ = std::chrono::steady_clock::now() + backoff_;
        spdlog::warn("write-back of {} bytes {}+{} failed ({}); the chunks stay dirty, retrying in {} ms",
                     c.image->record().name, c.run.offset, c.run.length, last_error_, backoff_.count());
      }
    }
    if (stop_) {
      if (inflight_ == 0) break;
      cv_.wait(lock, [&] { return !completions_.empty(); });
      continue;
    }
    // Cleared before the runs are taken (StartRunsLocked drops mu_): a Wake
    // or Flush that comes meanwhile is seen by the wait below, never lost.
    woken_ = false;
    StartRunsLocked(lock);
    // Wake for new writes, completions, flushes, the end of a backoff, and
    // often enough that chunks whose delay passed are taken promptly.
    auto next = std::chrono::steady_clock::now() +
                std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10), options_.delay / 2);
    if (paused_until_ > std::chrono::steady_clock::now()) next = std::max(next, paused_until_);
    cv_.wait_until(lock, next, [&] { return stop_ || woken_ || !completions_.empty(); });
  }
}

}  // namespace affinity::fs
