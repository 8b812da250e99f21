// affinity-trace-replay: replays a block trace against a file (an image on an
// affinityfs mount, the local file, a peer's mount) and reports what a VM
// doing those reads would have seen.
//
//   affinity-trace-replay --trace T.csv --target FILE [--timed] [--direct]
//                         [--verify SOURCE] [--drop-page-cache] [--json]
//
// Trace: CSV lines `time_s,offset,length,op` (a header line is allowed; op is
// R or W). Reads are issued one after another, like a guest's synchronous
// boot path; with --timed each waits until its recorded time (a request that
// falls behind is issued at once and its lag recorded), otherwise as fast as
// possible. Writes are counted and skipped: the replayer never changes the
// target. --direct opens with O_DIRECT (no page cache between the replayer
// and the filesystem). --verify compares every byte read with SOURCE at the
// same offset. --drop-page-cache calls posix_fadvise(DONTNEED) on the target
// before the replay: how a "warm" run measures the system's own cache (its
// disk cache, its daemon) and not the kernel's page cache of the target.
//
// Report: total time, reads and bytes, throughput, read latency p50/p99/max,
// the hit ratio of this replay when the target is on an affinityfs mount (from
// user.affinity.hits/misses before and after), and verify mismatches.
// --json keys: seconds (= total_s, wall time of the whole replay), reads,
// bytes, throughput_mib_s (bytes / 2^20 / seconds), p50_us, p99_us, max_us
// (= latency_*_us), mismatches (0 unless --verify; "verified" says whether it
// was checked), read_time_s (sum of read latencies), short_reads,
// writes_skipped, max_lag_ms, mode, target, page_cache_dropped, hit_ratio
// (only on an affinityfs mount).
// Exit: 0; 1 on a bad trace (line number and reason), an I/O error or a
// mismatch.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "profile/block_trace.h"

namespace {

using Clock = std::chrono::steady_clock;

using affinity::profile::TraceRecord;

struct Options {
  std::string trace, target, verify;
  bool timed = false, direct = false, json = false, drop_page_cache = false;
  double from_s = 0;  // replay only what the trace reads from this time on (a migration's cut-over)
};

// user.affinity.NAME as a number, or nullopt when the target is not on a mount.
std::optional<uint64_t> AffinityCounter(const std::string& path, const char* name) {
  char buf[64];
  ssize_t n = ::getxattr(path.c_str(), (std::string("user.affinity.") + name).c_str(), buf, sizeof buf - 1);
  if (n < 0) return std::nullopt;
  buf[n] = '\0';
  uint64_t v = 0;
  char* end = nullptr;
  errno = 0;
  v = std::strtoull(buf, &end, 10);
  return n > 0 && errno == 0 && *end == '\0' ? std::optional<uint64_t>(v) : std::nullopt;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

bool ReadExactly(int fd, char* buf, uint64_t len, uint64_t off, uint64_t* got) {
  *got = 0;
  while (*got < len) {
    ssize_t n = ::pread(fd, buf + *got, len - *got, static_cast<off_t>(off + *got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;  // end of file: a trace may read past it, like a guest probing
    *got += static_cast<uint64_t>(n);
  }
  return true;
}

// Drops the kernel's cached pages of `path` (clean ones; the replayer never
// dirties any). On a FUSE file this invalidates the mount's page cache only,
// so the next reads reach the filesystem daemon.
bool DropPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "affinity-trace-replay: open %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // returns the error, does not set errno
  ::close(fd);
  if (err != 0) {
    std::fprintf(stderr, "affinity-trace-replay: posix_fadvise(DONTNEED) %s: %s\n", path.c_str(), std::strerror(err));
    return false;
  }
  return true;
}

int Replay(const Options& o) {
  auto trace = affinity::profile::LoadBlockTrace(o.trace);
  if (!trace.ok()) {
    std::fprintf(stderr, "affinity-trace-replay: %s\n", trace.status().message().c_str());
    return 1;
  }
  if (o.from_s > 0) {
    std::erase_if(*trace, [&](const TraceRecord& r) { return r.time_s < o.from_s; });
    for (TraceRecord& r : *trace) r.time_s -= o.from_s;
  }
  // Before the target is opened for the replay, so no read of ours is cached.
  if (o.drop_page_cache && !DropPageCache(o.target)) return 1;
  int fd = ::open(o.target.c_str(), O_RDONLY | O_CLOEXEC | (o.direct ? O_DIRECT : 0));
  if (fd < 0) {
    std::fprintf(stderr, "affinity-trace-replay: open %s: %s\n", o.target.c_str(), std::strerror(errno));
    return 1;
  }
  int verify_fd = -1;
  if (!o.verify.empty()) {
    verify_fd = ::open(o.verify.c_str(), O_RDONLY | O_CLOEXEC);
    if (verify_fd < 0) {
      std::fprintf(stderr, "affinity-trace-replay: open %s: %s\n", o.verify.c_str(), std::strerror(errno));
      ::close(fd);
      return 1;
    }
  }
  const auto hits0 = AffinityCounter(o.target, "hits");
  const auto misses0 = AffinityCounter(o.target, "misses");

  uint64_t max_len = 0;
  for (const auto& r : *trace) max_len = std::max(max_len, r.length);
  // O_DIRECT wants aligned buffers (and offsets/lengths: the trace's business).
  const size_t align = 4096;
  size_t buf_len = static_cast<size_t>((max_len + align - 1) / align * align);
  char* buf = static_cast<char*>(std::aligned_alloc(align, std::max<size_t>(buf_len, align)));
  std::vector<char> expected(static_cast<size_t>(max_len));

  std::vector<double> latencies_us;
  uint64_t reads = 0, bytes = 0, writes_skipped = 0, mismatches = 0, short_reads = 0;
  double max_lag_ms = 0;
  int rc = 0;
  const auto start = Clock::now();
  for (size_t i = 0; i < trace->size(); ++i) {
    const TraceRecord& r = (*trace)[i];
    if (r.write) {
      ++writes_skipped;
      continue;
    }
    if (o.timed) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(r.time_s));
      const auto now = Clock::now();
      if (now < due) {
        std::this_thread::sleep_until(due);
      } else {
        max_lag_ms = std::max(max_lag_ms, std::chrono::duration<double, std::milli>(now - due).count());
      }
    }
    uint64_t got = 0;
    const auto t0 = Clock::now();
    bool ok = ReadExactly(fd, buf, r.length, r.offset, &got);
    const auto t1 = Clock::now();
    if (!ok) {
      std::fprintf(stderr, "affinity-trace-replay: read %llu+%llu of %s (trace record %zu): %s\n",
                   static_cast<unsigned long long>(r.offset), static_cast<unsigned long long>(r.length),
                   o.target.c_str(), i + 1, std::strerror(errno));
      rc = 1;
      break;
    }
    ++reads;
    bytes += got;
    short_reads += got < r.length ? 1 : 0;
    latencies_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (verify_fd >= 0) {
      uint64_t want = 0;
      if (!ReadExactly(verify_fd, expected.data(), r.length, r.offset, &want) || want != got ||
          std::memcmp(expected.data(), buf, got) != 0) {
        ++mismatches;
      }
    }
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::free(buf);
  ::close(fd);
  if (verify_fd >= 0) ::close(verify_fd);

  const double p50 = Percentile(latencies_us, 0.50), p99 = Percentile(latencies_us, 0.99),
               max_us = Percentile(latencies_us, 1.0);
  nlohmann::json report = {{"target", o.target},
                           {"mode", o.timed ? "timed" : "fast"},
                           {"page_cache_dropped", o.drop_page_cache},
                           {"seconds", total_s},
                           {"total_s", total_s},
                           {"throughput_mib_s", total_s > 0 ? static_cast<double>(bytes) / (1 << 20) / total_s : 0.0},
                           {"p50_us", p50},
                           {"p99_us", p99},
                           {"max_us", max_us},
                           {"mismatches", mismatches},
                           {"verified", !o.verify.empty()},
                           {"reads", reads},
                           {"bytes", bytes},
                           {"short_reads", short_reads},
                           {"writes_skipped", writes_skipped},
                           {"latency_p50_us", p50},
                           {"latency_p99_us", p99},
                           {"latency_max_us", max_us},
                           {"max_lag_ms", max_lag_ms},
                           {"read_time_s", std::accumulate(latencies_us.begin(), latencies_us.end(), 0.0) / 1e6}};
  const auto hits1 = AffinityCounter(o.target, "hits");
  const auto misses1 = AffinityCounter(o.target, "misses");
  if (hits0 && misses0 && hits1 && misses1) {
    const double h = static_cast<double>(*hits1 - *hits0), m = static_cast<double>(*misses1 - *misses0);
    report["hit_ratio"] = h + m > 0 ? h / (h + m) : 0.0;
  }

  if (o.json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%-16s %s (%s)\n", "target", o.target.c_str(), o.timed ? "recorded timing" : "as fast as possible");
    std::printf("%-16s %.3f s (%.1f MiB/s)\n%-16s %llu (%llu bytes, %llu writes skipped)\n", "total", total_s,
                report["throughput_mib_s"].get<double>(), "reads", static_cast<unsigned long long>(reads),
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(writes_skipped));
    std::printf("%-16s p50 %.0f us, p99 %.0f us, max %.0f us\n", "read latency", p50, p99, max_us);
    if (o.drop_page_cache) std::printf("%-16s dropped before the replay\n", "page cache");
    if (report.contains("hit_ratio")) std::printf("%-16s %.4f\n", "hit ratio", report["hit_ratio"].get<double>());
    if (o.timed) std::printf("%-16s %.1f ms\n", "max lag", max_lag_ms);
    if (!o.verify.empty()) {
      std::printf("%-16s %llu\n", "mismatches", static_cast<unsigned long long>(mismatches));
    }
  }
  if (mismatches > 0) {
    std::fprintf(stderr, "affinity-trace-replay: %llu reads differ from %s\n",
                 static_cast<unsigned long long>(mismatches), o.verify.c_str());
    rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"affinity-trace-replay: replay a block trace (CSV time_s,offset,length,op) against a file"};
  app.add_option("--trace", o.trace, "Trace file (CSV)")->required();
  app.add_option("--target", o.target, "File to read (e.g. an image on an affinityfs mount)")->required();
  app.add_flag("--timed", o.timed, "Issue each read at its recorded time (default: as fast as possible)");
  app.add_flag("--direct", o.direct, "Open the target with O_DIRECT");
  app.add_option("--verify", o.verify, "Compare every byte read with this file");
  app.add_flag("--json", o.json, "One JSON object instead of text");
  app.add_flag("--drop-page-cache", o.drop_page_cache,
               "Before replaying, posix_fadvise(target, 0, 0, POSIX_FADV_DONTNEED): how a \"warm\" run drops the "
               "kernel page cache of the target, so that the system's own cache is measured");
  app.add_option("--from", o.from_s, "Replay from this many seconds into the trace (times shifted to start at 0)");
  CLI11_PARSE(app, argc, argv);
  return Replay(o);
}
