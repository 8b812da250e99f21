#include "fs/xattr_stats.h"

#include <algorithm>
#include <cstdio>

namespace affinity::fs {
namespace {

std::string Ratio(uint64_t num, uint64_t den) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den));
  return buf;
}

uint64_t Get(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

struct Totals {
  uint64_t hits = 0, misses = 0, bytes_from_cache = 0, bytes_after_miss = 0, bytes_demand = 0, bytes_readahead = 0, bytes_prefetch = 0,
           fetch_requests = 0, fetch_errors = 0, corrupt_chunks = 0, evicted_bytes = 0, store_errors = 0,
           cached_bytes = 0, chunks_present = 0, chunks_total = 0, dirty_bytes = 0, dirty_chunks = 0,
           write_requests = 0, bytes_written = 0, writeback_requests = 0, writeback_bytes = 0, writeback_errors = 0,
           flushes = 0, last_flush_us = 0;
  int64_t inflight = 0;

  void Add(ImageCache& image) {
    ImageStats& s = image.stats();
    hits += Get(s.hits);
    misses += Get(s.misses);
    bytes_from_cache += Get(s.bytes_from_cache);
    bytes_after_miss += Get(s.bytes_after_miss);
    bytes_demand += Get(s.bytes_demand);
    bytes_readahead += Get(s.bytes_readahead);
    bytes_prefetch += Get(s.bytes_prefetch);
    fetch_requests += Get(s.fetch_requests);
    fetch_errors += Get(s.fetch_errors);
    corrupt_chunks += Get(s.corrupt_chunks);
    evicted_bytes += Get(s.evicted_bytes);
    store_errors += Get(s.store_errors);
    inflight += s.inflight_fetches.load(std::memory_order_relaxed);
    cached_bytes += image.cached_bytes();
    chunks_present += image.chunks_present();
    chunks_total += image.chunk_count();
    dirty_bytes += image.dirty_bytes();
    dirty_chunks += image.dirty_chunks();
    write_requests += Get(s.write_requests);
    bytes_written += Get(s.bytes_written);
    writeback_requests += Get(s.writeback_requests);
    writeback_bytes += Get(s.writeback_bytes);
    writeback_errors += Get(s.writeback_errors);
    flushes += Get(s.flushes);
    last_flush_us = std::max(last_flush_us, Get(s.last_flush_us));
  }

  void AppendTo(XattrList& out, const LatencyHistogram& latency) const {
    auto put = [&](const char* name, std::string value) { out.emplace_back(std::string(kXattrPrefix) + name, value); };
    put("hits", std::to_string(hits));
    put("misses", std::to_string(misses));
    put("hit_ratio", Ratio(hits, hits + misses));
    put("bytes_from_cache", std::to_string(bytes_from_cache));
    put("bytes_after_miss", std::to_string(bytes_after_miss));
    put("bytes_fetched", std::to_string(bytes_demand + bytes_readahead + bytes_prefetch));
    put("bytes_demand", std::to_string(bytes_demand));
    put("bytes_readahead", std::to_string(bytes_readahead));
    put("bytes_prefetch", std::to_string(bytes_prefetch));
    put("fetch_requests", std::to_string(fetch_requests));
    put("fetch_errors", std::to_string(fetch_errors));
    put("corrupt_chunks", std::to_string(corrupt_chunks));
    put("store_errors", std::to_string(store_errors));
    put("evicted_bytes", std::to_string(evicted_bytes));
    put("inflight_fetches", std::to_string(inflight < 0 ? 0 : inflight));
    put("cached_bytes", std::to_string(cached_bytes));
    put("chunks_present", std::to_string(chunks_present));
    put("chunks_total", std::to_string(chunks_total));
    put("dirty_bytes", std::to_string(dirty_bytes));
    put("writeback_queue", std::to_string(dirty_chunks));
    put("writeback_errors", std::to_string(writeback_errors));
    put("last_flush_us", std::to_string(last_flush_us));
    put("writes", std::to_string(write_requests));
    put("bytes_written", std::to_string(bytes_written));
    put("writeback_requests", std::to_string(writeback_requests));
    put("writeback_bytes", std::to_string(writeback_bytes));
    put("flushes", std::to_string(flushes));
    put("miss_latency_p50_us", std::to_string(latency.Percentile(0.50)));
    put("miss_latency_p99_us", std::to_string(latency.Percentile(0.99)));
  }
};

}  // namespace

XattrList ImageXattrs(ImageCache& image) {
  Totals t;
  t.Add(image);
  XattrList out;
  t.AppendTo(out, image.stats().miss_latency_us);
  out.emplace_back(std::string(kXattrPrefix) + "chunk_size", std::to_string(image.chunk_size()));
  out.emplace_back(std::string(kXattrPrefix) + "generation", std::to_string(image.record().generation));
  return out;
}

XattrList RootXattrs(VmCache& cache, const std::string& storage_url) {
  Totals t;
  LatencyHistogram latency;
  for (const auto& image : cache.images()) {
    t.Add(*image);
    latency.MergeFrom(image->stats().miss_latency_us);
  }
  XattrList out;
  t.AppendTo(out, latency);
  auto put = [&](const char* name, std::string value) { out.emplace_back(std::string(kXattrPrefix) + name, value); };
  put("chunk_size", std::to_string(cache.options().chunk_size));
  put("cache_size_limit", std::to_string(cache.options().cache_size));
  put("index_errors", std::to_string(cache.index().commit_errors()));
  put("images", std::to_string(cache.images().size()));
  put("vm", cache.options().vm);
  put("storage_url", storage_url);
  return out;
}

XattrList GrantXattrs(const GrantSnapshot& g) {
  XattrList out;
  auto put = [&](const char* name, std::string value) { out.emplace_back(std::string(kXattrPrefix) + name, value); };
  put("grant_id", g.grant_id);
  put("grant_ops", g.ops);
  put("grant_expires", std::to_string(g.expires));
  put("grant_epoch", std::to_string(g.epoch));
  put("grant_state", g.revoked ? "revoked" : "valid");
  put("grant_revoked_reason", g.revoked_reason);
  put("migration", g.migration);
  put("migration_state", g.migration_state);
  put("grant_renewals", std::to_string(g.renewals));
  put("migration_purges", std::to_string(g.purges));
  put("stale_ranges_invalidated", std::to_string(g.invalidated_ranges));
  return out;
}

XattrList AccessXattrs(const AccessRecorderStats& s) {
  XattrList out;
  auto put = [&](const char* name, uint64_t value) {
    out.emplace_back(std::string(kXattrPrefix) + name, std::to_string(value));
  };
  put("accesses_recorded", s.recorded);
  put("accesses_dropped", s.dropped);
  put("accesses_uploaded", s.uploaded);
  put("accesses_pending", s.pending);
  put("access_upload_errors", s.upload_errors);
  return out;
}

XattrList PrefetchXattrs(const PrefetchStats& s) {
  XattrList out;
  auto put = [&](const char* name, std::string value) {
    out.emplace_back(std::string(kXattrPrefix) + name, std::move(value));
  };
  put("prefetch_state", s.state);
  put("prefetch_queued", std::to_string(s.queued));
  put("prefetch_inflight", std::to_string(s.inflight));
  put("prefetch_planned_bytes", std::to_string(s.planned_bytes));
  put("prefetch_done_bytes", std::to_string(s.done_bytes));
  put("prefetch_used_bytes", std::to_string(s.used_bytes));
  put("prefetch_wasted_bytes", std::to_string(s.wasted_bytes));
  put("prefetch_skipped", std::to_string(s.skipped));
  put("prefetch_accuracy", Ratio(s.used_bytes, s.done_bytes));
  put("prefetch_coverage", Ratio(s.first_read_hits, s.first_reads));
  put("demand_misses_while_queued", std::to_string(s.demand_misses_while_queued));
  put("prefetch_window", std::to_string(s.window));
  put("prefetch_yields", std::to_string(s.yields));
  char rtt[32], busy[32];
  std::snprintf(rtt, sizeof rtt, "%.3f", s.link_rtt_ms);
  std::snprintf(busy, sizeof busy, "%.4f", s.demand_busy);
  put("prefetch_rtt_ms", rtt);
  put("prefetch_link_demand_share", busy);
  put("profile_version", s.profile_id.empty() ? "none" : s.profile_id);
  if (!s.error.empty()) put("prefetch_error", s.error);
  return out;
}

}  // namespace affinity::fs
