// Unit tests of the cache layer below FUSE: index, image cache, eviction,
// options and listing parsing. The network is replaced by GatedSource, a test
// double that serves bytes from memory but only when the test releases them,
// so single-flight and coalescing are checked deterministically (the
// end-to-end versions against the real server are in read_path_test.cc).
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "fs/chunk_index.h"
#include "fs/daemon_options.h"
#include "fs/image_cache.h"
#include "fs/image_listing.h"
#include "fs/latency_histogram.h"
#include "fs/vm_cache.h"
#include "tests/support/test_env.h"

namespace affinity::fs {
namespace {

using testing::TempDir;

class GatedSource final : public ChunkSource {
 public:
  explicit GatedSource(std::string bytes) : bytes_(std::move(bytes)) {}

  void Fetch(const std::string&, ByteRange range, fetcher::Priority, Deadline, Done done) override {
    std::lock_guard lock(mu_);
    requests_.push_back(range);
    pending_.push_back({range, std::move(done)});
    cv_.notify_all();
  }

  // Completes every pending request (optionally failing them).
  void ReleaseAll(Status fail = Status::Ok()) {
    std::vector<std::pair<ByteRange, Done>> pending;
    {
      std::lock_guard lock(mu_);
      pending.swap(pending_);
    }
    for (auto& [range, done] : pending) {
      if (!fail.ok()) {
        done(fail);
      } else {
        done(std::vector<uint8_t>(bytes_.begin() + static_cast<long>(range.offset),
                                  bytes_.begin() + static_cast<long>(range.end())));
      }
    }
  }

  void WaitForRequests(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return requests_.size() >= n; });
  }

  std::vector<ByteRange> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::string bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ByteRange> requests_;
  std::vector<std::pair<ByteRange, Done>> pending_;
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return s;
}

auto Later() { return std::chrono::steady_clock::now() + std::chrono::seconds(10); }

std::string ReadLeaseBytes(const ReadLease& lease) {
  std::string out(lease.length(), '\0');
  if (lease.from_memory()) return std::string(lease.memory().begin(), lease.memory().end());
  EXPECT_EQ(::pread(lease.fd(), out.data(), out.size(), static_cast<off_t>(lease.offset())),
            static_cast<ssize_t>(out.size()));
  return out;
}

struct CacheRig {
  TempDir dir;
  std::string bytes = Pattern((1 << 20) + 5000);
  GatedSource source{bytes};
  std::unique_ptr<VmCache> cache;

  explicit CacheRig(uint64_t cache_size = 0) {
    VmCacheOptions o{dir.path(), "vm-1", 64 * 1024, cache_size};
    auto c = VmCache::Open(o, {{"disk.raw", bytes.size(), 1}}, &source);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    cache = std::move(c).value();
  }
  ImageCache& image() { return *cache->images()[0]; }
};

TEST(ImageCache, ConcurrentMissesOnTheSameChunksMakeOneCoalescedRequest) {
  CacheRig rig;
  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto lease = rig.image().Acquire(1000, 200000, Later());  // chunks 0..3
      if (lease.ok() && ReadLeaseBytes(*lease) == rig.bytes.substr(1000, 200000)) good++;
    });
  }
  rig.source.WaitForRequests(1);
  // Give the other threads a chance to pile onto the flight before it lands.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rig.source.ReleaseAll();
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), kThreads);
  auto reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 1u) << "single-flight violated";
  EXPECT_EQ(reqs[0], (ByteRange{0, 4 * 65536}));
  EXPECT_EQ(rig.image().stats().hits.load() + rig.image().stats().misses.load(), static_cast<uint64_t>(kThreads));
}

TEST(ImageCache, PartiallyCachedRangeFetchesOnlyTheGaps) {
  CacheRig rig;
  std::thread first([&] { ASSERT_TRUE(rig.image().Acquire(65536, 65536, Later()).ok()); });  // chunk 1
  rig.source.WaitForRequests(1);
  rig.source.ReleaseAll();
  first.join();
  std::thread second([&] {
    auto lease = rig.image().Acquire(0, 4 * 65536, Later());
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(ReadLeaseBytes(*lease), rig.bytes.substr(0, 4 * 65536));
  });
  rig.source.WaitForRequests(3);
  rig.source.ReleaseAll();
  second.join();
  auto reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1], (ByteRange{0, 65536}));
  EXPECT_EQ(reqs[2], (ByteRange{2 * 65536, 2 * 65536}));
}

TEST(ImageCache, FailedFetchIsReportedToEveryWaiterAndNothingIsCached) {
  CacheRig rig;
  std::vector<std::thread> threads;
  std::atomic<int> unavailable{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto lease = rig.image().Acquire(0, 100, Later());
      if (!lease.ok() && lease.status().code() == StatusCode::kUnavailable) unavailable++;
    });
  }
  rig.source.WaitForRequests(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rig.source.ReleaseAll(Unavailable("storage host down"));
  for (auto& th : threads) th.join();
  // Threads that arrived after the failure started a new flight; release it too.
  rig.source.ReleaseAll(Unavailable("storage host down"));
  EXPECT_EQ(unavailable.load(), 4);
  EXPECT_EQ(rig.image().cached_bytes(), 0u);
}

TEST(ImageCache, DeadlinePassingGivesTimeout) {
  CacheRig rig;
  auto lease = rig.image().Acquire(0, 100, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), StatusCode::kTimeout);
  rig.source.ReleaseAll();  // the late reply is still cached for the next reader
  EXPECT_EQ(rig.image().cached_bytes(), 65536u);
}

TEST(ImageCache, ReadsPastEndOfImageAreEmptyAndTailChunkIsShort) {
  CacheRig rig;
  auto eof = rig.image().Acquire(rig.bytes.size(), 4096, Later());
  ASSERT_TRUE(eof.ok());
  EXPECT_EQ(eof->length(), 0u);
  std::thread t([&] {
    auto lease = rig.image().Acquire(rig.bytes.size() - 10, 4096, Later());
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(lease->length(), 10u);
    EXPECT_EQ(ReadLeaseBytes(*lease), rig.bytes.substr(rig.bytes.size() - 10));
  });
  rig.source.WaitForRequests(1);
  rig.source.ReleaseAll();
  t.join();
  EXPECT_EQ(rig.source.requests()[0], (ByteRange{16 * 65536, 5000}));
}

TEST(ImageCache, SequentialReadsTriggerGrowingReadahead) {
  CacheRig rig;
  rig.image().set_max_readahead_bytes(512 * 1024);
  rig.image().NoteReadForReadahead(0, 65536, Later());  // first read: no stream yet
  EXPECT_TRUE(rig.source.requests().empty());
  rig.image().NoteReadForReadahead(65536, 65536, Later());  // sequential: fetch ahead
  auto reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].offset, 2u * 65536);
  rig.image().NoteReadForReadahead(2 * 65536, 65536, Later());
  reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].offset, 4u * 65536) << "read-ahead must not refetch chunks already in flight";
  rig.source.ReleaseAll();
  EXPECT_GT(rig.image().stats().bytes_readahead.load(), 0u);
}

TEST(ImageCache, AFullReadaheadWindowIsToppedUpInBigPiecesNotAReadAtATime) {
  CacheRig rig;
  ImageCache& image = rig.image();
  image.set_max_readahead_bytes(256 * 1024);  // 4 chunks
  for (uint64_t c = 0; c < 12; ++c) {
    image.NoteReadForReadahead(c * 65536, 65536, Later());
    rig.source.ReleaseAll();  // fetches land at once
  }
  // Once the window is full (4 chunks ahead), it is topped up by 2 chunks
  // when half of it is read, not by 1 chunk per read.
  auto reqs = rig.source.requests();
  size_t one_chunk = 0;
  for (const auto& r : reqs) one_chunk += r.length == 65536 ? 1 : 0;
  EXPECT_LE(reqs.size(), 7u);
  EXPECT_LE(one_chunk, 2u);
}

TEST(ImageCache, ReadaheadOfAStreamTheProfileKnowsStaysInsideTheProfile) {
  CacheRig rig;
  ImageCache& image = rig.image();
  image.set_max_readahead_bytes(512 * 1024);
  Roaring profiled;
  for (uint32_t c : {0u, 1u, 2u, 4u}) profiled.add(c);  // a file in chunks 0-2, another at 4
  image.SetProfiledChunks(profiled);
  image.NoteReadForReadahead(0, 65536, Later());
  image.NoteReadForReadahead(65536, 65536, Later());  // sequential, inside the profile
  rig.source.WaitForRequests(1);
  auto reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].offset, 2u * 65536);
  EXPECT_EQ(reqs[0].length, 65536u) << "chunk 3 is not in the profile: the stream stops at 2";
  image.NoteReadForReadahead(2 * 65536, 65536, Later());
  reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].offset, 4u * 65536) << "ahead into the profile's next chunk, past the gap";
  EXPECT_EQ(reqs[1].length, 65536u);
  // The stream goes on past the profile (chunk 8, something new): the full
  // window again (three reads of 64 KiB so far: 192 KiB from chunk 9).
  image.NoteReadForReadahead(8 * 65536, 65536, Later());
  reqs = rig.source.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].offset, 9u * 65536);
  EXPECT_EQ(reqs[2].length, 3u * 65536);
  rig.source.ReleaseAll();
}

TEST(ImageCache, EvictionSkipsPinnedChunksAndPunchesHoles) {
  CacheRig rig(/*cache_size=*/64 * 65536);
  std::thread t([&] {
    auto lease = rig.image().Acquire(0, rig.bytes.size(), Later());
    ASSERT_TRUE(lease.ok());
    // While the lease pins everything, nothing can be evicted.
    EXPECT_EQ(rig.image().TryEvict(0), 0u);
  });
  rig.source.WaitForRequests(1);
  rig.source.ReleaseAll();
  t.join();
  EXPECT_EQ(rig.image().TryEvict(3), 65536u);
  EXPECT_EQ(rig.image().TryEvict(3), 0u) << "already gone";
  EXPECT_EQ(rig.image().cached_bytes(), rig.bytes.size() - 65536);
  // The evicted chunk reads as a hole on disk and is fetched again on demand.
  std::thread again([&] {
    auto lease = rig.image().Acquire(3 * 65536, 10, Later());
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(ReadLeaseBytes(*lease), rig.bytes.substr(3 * 65536, 10));
  });
  rig.source.WaitForRequests(2);
  rig.source.ReleaseAll();
  again.join();
}

// --- writes (docs/writes.md) ---

std::vector<uint8_t> Bytes(size_t n, uint8_t v) { return std::vector<uint8_t>(n, v); }

TEST(ImageCacheWrites, RefusedWithReadOnlyUntilTheGrantAllowsWriting) {
  CacheRig rig;
  rig.cache->Start();
  Status s = rig.image().Write(0, Bytes(10, 1), Later());
  EXPECT_EQ(s.code(), StatusCode::kReadOnly) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EROFS);
  EXPECT_TRUE(rig.source.requests().empty()) << "a refused write fetches nothing";
  rig.cache->access().set_writable(true);
  s = rig.image().Write(rig.bytes.size() - 5, Bytes(10, 1), Later());
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << "images keep their size";
}

TEST(ImageCacheWrites, APartialChunkIsFetchedFirstAWholeChunkIsNot) {
  CacheRig rig;
  rig.cache->Start();
  rig.cache->access().set_writable(true);
  // Chunk 2 entirely: no request.
  ASSERT_TRUE(rig.image().Write(2 * 65536, Bytes(65536, 0xab), Later()).ok());
  EXPECT_TRUE(rig.source.requests().empty());
  // 100 bytes into chunk 0: waits for chunk 0's fetch, then writes into it.
  std::thread writer([&] { EXPECT_TRUE(rig.image().Write(10, Bytes(100, 0xcd), Later()).ok()); });
  rig.source.WaitForRequests(1);
  ASSERT_EQ(rig.source.requests().size(), 1u);
  EXPECT_EQ(rig.source.requests()[0].offset, 0u);
  rig.source.ReleaseAll();
  writer.join();
  std::string expect = rig.bytes;
  expect.replace(2 * 65536, 65536, std::string(65536, '\xab'));
  expect.replace(10, 100, std::string(100, '\xcd'));
  for (uint64_t chunk : {0, 2}) {
    auto lease = rig.image().Acquire(chunk * 65536, 65536, Later());
    ASSERT_TRUE(lease.ok());
    EXPECT_TRUE(ReadLeaseBytes(*lease) == expect.substr(chunk * 65536, 65536)) << "chunk " << chunk;
  }
  EXPECT_EQ(rig.image().dirty_bytes(), 2u * 65536);
  EXPECT_EQ(rig.image().dirty_chunks(), 2u);
}

TEST(ImageCacheWrites, AChunkRewrittenDuringItsWriteBackStaysDirtyUntilSentAgain) {
  CacheRig rig;
  rig.cache->Start();
  rig.cache->access().set_writable(true);
  ImageCache& image = rig.image();
  // Chunk 1 whole (no fetch), written back whole.
  ASSERT_TRUE(image.Write(65536, Bytes(65536, 3), Later()).ok());
  auto runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].offset, 65536u);
  EXPECT_EQ(runs[0].length, 65536u);
  image.FinishWriteBack(runs[0], Status::Ok());
  ASSERT_EQ(image.dirty_chunks(), 0u);
  // Now 4 KiB into it.
  ASSERT_TRUE(image.Write(65536 + 4096, Bytes(4096, 1), Later()).ok());
  const uint64_t barrier = image.WriteSeq();
  runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  // Sub-block tracking: the run is the written 4 KiB, not the 64 KiB chunk.
  EXPECT_EQ(runs[0].offset, 65536u + 4096);
  EXPECT_EQ(runs[0].length, 4096u);
  EXPECT_TRUE(image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8).empty())
      << "a chunk in a write-back is not taken twice";
  ASSERT_TRUE(image.Write(65536 + 8192, Bytes(10, 2), Later()).ok());  // lands while the PUT is out
  image.FinishWriteBack(runs[0], Status::Ok());
  EXPECT_EQ(image.dirty_chunks(), 1u) << "rewritten meanwhile: still dirty";
  EXPECT_TRUE(image.WaitWrittenBack(barrier, std::chrono::steady_clock::now()))
      << "but every write up to the barrier is on the storage host";
  EXPECT_FALSE(image.WaitWrittenBack(image.WriteSeq(), std::chrono::steady_clock::now()));
  // A failed PUT changes nothing; the next one cleans the chunk.
  runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  image.FinishWriteBack(runs[0], Unavailable("storage host down"));
  EXPECT_EQ(image.dirty_chunks(), 1u);
  runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  image.FinishWriteBack(runs[0], Status::Ok());
  EXPECT_EQ(image.dirty_chunks(), 0u);
  EXPECT_EQ(image.dirty_bytes(), 0u);
  EXPECT_TRUE(image.WaitWrittenBack(image.WriteSeq(), std::chrono::steady_clock::now()));
}

// Found by write_model_test: a whole-chunk write during a storage outage
// waited for a fetch of the bytes it replaces, past its deadline.
TEST(ImageCacheWrites, AWholeChunkWriteTakesOverAFetchInsteadOfWaitingForIt) {
  CacheRig rig;
  rig.cache->Start();
  rig.cache->access().set_writable(true);
  ImageCache& image = rig.image();
  // A reader's fetch of chunks 2..3 is out and does not come back yet.
  std::thread reader([&] {
    auto lease = image.Acquire(2 * 65536, 2 * 65536, Later());
    EXPECT_TRUE(lease.ok()) << lease.status().ToString();
  });
  rig.source.WaitForRequests(1);
  ASSERT_EQ(rig.source.requests().size(), 1u);
  // Chunk 2 overwritten whole: done without the fetch.
  ASSERT_TRUE(image.Write(2 * 65536, Bytes(65536, 0xab), std::chrono::steady_clock::now() + std::chrono::seconds(2))
                  .ok());
  rig.source.ReleaseAll();  // the fetch lands now, with chunk 2's old bytes
  reader.join();
  auto lease = image.Acquire(2 * 65536, 2 * 65536, Later());
  ASSERT_TRUE(lease.ok());
  const std::string got = ReadLeaseBytes(*lease);
  EXPECT_TRUE(got.substr(0, 65536) == std::string(65536, '\xab')) << "the write's bytes, not the fetch's";
  EXPECT_TRUE(got.substr(65536) == rig.bytes.substr(3 * 65536, 65536)) << "chunk 3 from the fetch";
  EXPECT_EQ(image.dirty_chunks(), 1u);
  EXPECT_EQ(rig.source.requests().size(), 1u);
}

// Found by write_model_test: a chunk written back, then evicted before its
// clean row committed, left a dirty row over a punched hole after kill -9,
// and the next start wrote those zeros back to the storage host.
TEST(ImageCacheWrites, AWrittenBackChunkStaysUntilItsCleanRowIsCommitted) {
  CacheRig rig;  // not started: the index commits only when asked (Flush / WaitCommitted)
  rig.cache->access().set_writable(true);
  ImageCache& image = rig.image();
  ASSERT_TRUE(image.Write(65536, Bytes(65536, 9), Later()).ok());  // its dirty row is committed
  auto runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  image.FinishWriteBack(runs[0], Status::Ok());
  ASSERT_EQ(image.dirty_chunks(), 0u) << "clean in RAM";
  EXPECT_EQ(image.TryEvict(1), 0u) << "but the index still says dirty: the bytes must stay";
  std::vector<EvictionCandidate> candidates;
  image.CollectEvictionCandidates(candidates);
  EXPECT_TRUE(candidates.empty());
  {
    // What a restart now would see: the chunk dirty, so its bytes are needed.
    auto rows = rig.cache->index().LoadChunks("disk.raw");
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_TRUE((*rows)[0].dirty);
  }
  ASSERT_TRUE(rig.cache->Flush().ok());
  EXPECT_EQ(image.TryEvict(1), 65536u) << "clean row committed: evictable";
  // An invalidation waits for the clean row instead of giving up.
  ASSERT_TRUE(image.Write(0, Bytes(65536, 4), Later()).ok());
  runs = image.TakeWriteBackRuns(std::chrono::steady_clock::now(), true, 4 << 20, 8);
  ASSERT_EQ(runs.size(), 1u);
  image.FinishWriteBack(runs[0], Status::Ok());
  ASSERT_TRUE(image.InvalidateRange(0, 65536, Later()).ok());
  EXPECT_EQ(image.chunks_present(), 0u);
}

TEST(ImageCacheWrites, DirtyChunksAreNeverEvictedAndSurviveAReopen) {
  CacheRig rig;
  rig.cache->Start();
  rig.cache->access().set_writable(true);
  ASSERT_TRUE(rig.image().Write(0, Bytes(65536, 7), Later()).ok());
  EXPECT_EQ(rig.image().TryEvict(0), 0u) << "dirty: never evicted";
  std::vector<EvictionCandidate> candidates;
  rig.image().CollectEvictionCandidates(candidates);
  EXPECT_TRUE(candidates.empty());
  ASSERT_TRUE(rig.image().InvalidateRange(0, 65536, Later()).ok());
  EXPECT_EQ(rig.image().dirty_chunks(), 1u) << "nor dropped by an invalidation";
  // Acknowledged means durable: a new VmCache over the same directory has it dirty.
  rig.cache.reset();
  VmCacheOptions o{rig.dir.path(), "vm-1", 64 * 1024, 0};
  auto reopened = VmCache::Open(o, {{"disk.raw", rig.bytes.size(), 1}}, &rig.source);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->images()[0]->dirty_chunks(), 1u);
  {
    auto lease = (*reopened)->images()[0]->Acquire(0, 65536, Later());
    ASSERT_TRUE(lease.ok());
    EXPECT_TRUE(ReadLeaseBytes(*lease) == std::string(65536, '\x07'));
  }
  // An image that changed on the storage host is not reset over dirty data.
  reopened->reset();
  auto changed = VmCache::Open(o, {{"disk.raw", rig.bytes.size(), 2}}, &rig.source);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(changed.status().message().find("never written back"), std::string::npos);
}

TEST(ChunkIndex, AVersion2IndexIsUpgradedInPlace) {
  TempDir dir;
  std::string path = dir / "index.sqlite";
  { ASSERT_TRUE(ChunkIndex::Open(path).ok()); }
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE meta SET value='2' WHERE key='format_version'").ok());
  }
  auto index = ChunkIndex::Open(path);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  auto version = (*index)->GetMeta("format_version");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, "3");
}

TEST(ChunkIndex, CommittedChunksSurviveReopenAndIdentityChangesReset) {
  TempDir dir;
  std::string path = dir / "index.sqlite";
  auto file = DataFile::Open(dir / "data", 1 << 20);
  ASSERT_TRUE(file.ok());
  {
    auto index = ChunkIndex::Open(path);
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    ImageRecord rec{"disk.raw", 1 << 20, 3, 65536};
    ASSERT_TRUE((*index)->ResetImage(rec).ok());
    (*index)->StartWriter();
    ChunkRecord c{7, ComputeChunkDigest(std::vector<uint8_t>(10, 1)), ChunkOrigin::kDemand};
    (*index)->EnqueuePut(*file, "disk.raw", c);
    (*index)->EnqueuePut(*file, "disk.raw", {8, c.digest, ChunkOrigin::kReadahead});
    (*index)->EnqueueDelete("disk.raw", 8);
    ASSERT_TRUE((*index)->Flush().ok());
  }
  auto index = ChunkIndex::Open(path);
  ASSERT_TRUE(index.ok());
  auto images = (*index)->ListImages();
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].generation, 3u);
  auto chunks = (*index)->LoadChunks("disk.raw");
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 1u);
  EXPECT_EQ((*chunks)[0].idx, 7u);
  ASSERT_TRUE((*index)->ResetImage({"disk.raw", 1 << 20, 4, 65536}).ok());
  EXPECT_TRUE((*index)->LoadChunks("disk.raw")->empty());
}

TEST(ChunkIndex, RefusesAnIndexOfAnotherFormat) {
  TempDir dir;
  std::string path = dir / "index.sqlite";
  { ASSERT_TRUE(ChunkIndex::Open(path).ok()); }
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE meta SET value='99' WHERE key='format_version'").ok());
  }
  auto index = ChunkIndex::Open(path);
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), StatusCode::kCorruption);
  EXPECT_NE(index.status().message().find("format version 99"), std::string::npos);
}

TEST(VmCache, ChangedGenerationDropsCachedBytesAndSecondDaemonIsRefused) {
  TempDir dir;
  std::string bytes = Pattern(300000);
  GatedSource source(bytes);
  VmCacheOptions o{dir.path(), "vm-1", 65536, 0};
  {
    auto cache = VmCache::Open(o, {{"disk.raw", bytes.size(), 1}}, &source);
    ASSERT_TRUE(cache.ok());
    auto second = VmCache::Open(o, {{"disk.raw", bytes.size(), 1}}, &source);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
    (*cache)->Start();
    std::thread t([&] { ASSERT_TRUE((*cache)->images()[0]->Acquire(0, 100, Later()).ok()); });
    source.WaitForRequests(1);
    source.ReleaseAll();
    t.join();
  }
  {
    auto cache = VmCache::Open(o, {{"disk.raw", bytes.size(), 1}}, &source);
    ASSERT_TRUE(cache.ok());
    EXPECT_EQ((*cache)->images()[0]->cached_bytes(), 65536u) << "same generation: kept";
  }
  auto cache = VmCache::Open(o, {{"disk.raw", bytes.size(), 2}}, &source);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ((*cache)->images()[0]->cached_bytes(), 0u) << "new generation: stale bytes dropped";
  auto listing = VmCache::CachedListing(o);
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ((*listing)[0].generation, 2u);
}

TEST(LatencyHistogram, PercentilesAreUpperBoundsWithinOneBucket) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.5), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) h.Record(v);
  uint64_t p50 = h.Percentile(0.5), p99 = h.Percentile(0.99);
  EXPECT_GE(p50, 500u);
  EXPECT_LE(p50, 500u * 9 / 8 + 1);
  EXPECT_GE(p99, 990u);
  EXPECT_LE(p99, 990u * 9 / 8 + 1);
  h.Record(uint64_t{1} << 40);  // beyond the range: lands in the last bucket
  EXPECT_EQ(h.count(), 1001u);
}

TEST(ImageListing, ParsesTheDocumentedShapeAndRejectsOthers) {
  auto ok = ParseImageListing("vm", R"({"vm":"vm","images":[{"name":"a.raw","size":10,"generation":2}]})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].name, "a.raw");
  EXPECT_EQ((*ok)[0].size, 10u);
  for (const char* bad : {"", "[]", "{\"images\":{}}", R"({"images":[{"name":"a","size":-1,"generation":1}]})",
                          R"({"images":[{"name":"../x","size":1,"generation":1}]})",
                          R"({"images":[{"name":"a","size":"1","generation":1}]})"}) {
    EXPECT_EQ(ParseImageListing("vm", bad).status().code(), StatusCode::kCorruption) << bad;
  }
}

}  // namespace
}  // namespace affinity::fs
