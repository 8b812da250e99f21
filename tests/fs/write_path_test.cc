// The write path end to end (docs/writes.md), on a real mount over a real
// storage host: acknowledged writes read back at once, fsync puts them on the
// storage host, a daemon killed with SIGKILL loses none of them, a dead
// storage host makes fsync fail (EIO) without dropping anything, dirty data
// is never evicted from a small cache, and a mount refuses to start rather
// than discard unwritten data of an image that changed meanwhile.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

class WritePathTest : public ReadPathTest {
 protected:
  void SetUp() override {
    ReadPathTest::SetUp();
    model_ = data_bytes_;
  }

  // pwrite through the mount and into the model; ASSERTs it was acknowledged.
  void WriteAt(int fd, uint64_t offset, uint64_t length, uint32_t seed) {
    std::string bytes(length, '\0');
    std::mt19937 rng(seed);
    for (char& c : bytes) c = static_cast<char>(rng());
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    ASSERT_EQ(n, static_cast<ssize_t>(length)) << "write " << length << " at " << offset << ": " << std::strerror(errno);
    model_.replace(offset, length, bytes);
  }
  int OpenRw() {
    int fd = ::open(MountPath("data.raw").c_str(), O_RDWR);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    return fd;
  }
  // The writes every test makes: unaligned, across chunk boundaries, a whole
  // uncached chunk, the image's last byte.
  void WriteMix(int fd) {
    WriteAt(fd, 100, 10, 1);                    // inside chunk 0
    WriteAt(fd, 65536 - 7, 20, 2);              // across chunks 0 and 1
    WriteAt(fd, 5 * 65536, 65536, 3);           // exactly chunk 5 (never fetched)
    WriteAt(fd, 9 * 65536 + 1000, 200000, 4);   // chunks 9-12, partial at both ends
    WriteAt(fd, kDataSize - 1, 1, 5);           // the last byte
    WriteAt(fd, 100, 4, 6);                     // rewrite of a dirty chunk
  }
  uint64_t XattrNumber(const std::string& name) { return std::stoull("0" + Xattr(MountPath("data.raw"), name)); }

  std::string model_;
};

TEST_F(WritePathTest, WritesReadBackAtOnceAndFsyncPutsThemOnTheStorageHost) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "30"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteMix(fd);
  EXPECT_EQ(ReadWholeFile(MountPath("data.raw")), model_) << "reads see every acknowledged write";
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), data_bytes_) << "the 30 s write-back delay has not passed";
  EXPECT_GT(XattrNumber("dirty_bytes"), 0u);
  EXPECT_GT(XattrNumber("writeback_queue"), 0u);

  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_) << "fsync returned: the storage host has every write";
  EXPECT_EQ(XattrNumber("dirty_bytes"), 0u);
  EXPECT_EQ(XattrNumber("writeback_queue"), 0u);
  EXPECT_EQ(XattrNumber("writeback_errors"), 0u);
  EXPECT_GT(XattrNumber("last_flush_us"), 0u);
  EXPECT_GE(XattrNumber("writes"), 6u) << "the kernel may split a large write";
  // Sub-chunk tracking: the PUTs carried about what was written, not whole chunks.
  EXPECT_LT(XattrNumber("writeback_bytes"), 2 * 65536 + 200000 + 4 * 65536);

  // Past the end: EFBIG; the image keeps its size.
  EXPECT_EQ(::pwrite(fd, "xy", 2, static_cast<off_t>(kDataSize - 1)), -1);
  EXPECT_EQ(errno, EFBIG);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(kDataSize)), 0) << "truncate to the same size is a no-op";
  EXPECT_EQ(::ftruncate(fd, 0), -1);
  EXPECT_EQ(errno, EPERM);
  ::close(fd);

  // Written back without an fsync too, once the delay passes: a remount with a short delay.
  mount->Unmount();
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
}

TEST_F(WritePathTest, WritesWithoutFsyncReachTheStorageHostAfterTheDelay) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "0.05"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteMix(fd);
  ::close(fd);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (XattrNumber("dirty_bytes") != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(XattrNumber("dirty_bytes"), 0u);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
}

TEST_F(WritePathTest, AKilledDaemonLosesNoAcknowledgedWrite) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "60"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteMix(fd);
  // O_DIRECT writes are acknowledged the same way.
  int dfd = ::open(MountPath("data.raw").c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(dfd, 0) << std::strerror(errno);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 8192), 0);
  std::memset(buf, 0x5a, 8192);
  ASSERT_EQ(::pwrite(dfd, buf, 8192, 20 * 4096), 8192) << std::strerror(errno);
  model_.replace(20 * 4096, 8192, std::string(8192, '\x5a'));
  std::free(buf);
  ::close(dfd);
  ::close(fd);

  mount->Kill9();
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), data_bytes_) << "nothing was written back before the kill";
  mount->Start();
  EXPECT_EQ(ReadWholeFile(MountPath("data.raw")), model_) << "every acknowledged write survived SIGKILL";
  EXPECT_GT(XattrNumber("dirty_bytes"), 0u) << "and is still dirty";
  fd = OpenRw();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_) << "the restarted daemon wrote it back";
  // Our own writes do not change the image's generation: a remount keeps the cache.
  const uint64_t cached = XattrNumber("cached_bytes");
  mount->Unmount();
  mount->Start();
  EXPECT_EQ(Xattr(MountPath("data.raw"), "generation"), "1");
  EXPECT_EQ(XattrNumber("cached_bytes"), cached) << mount->log();
}

TEST_F(WritePathTest, ADeadStorageHostFailsFsyncButLosesNothing) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--timeout", "2", "--writeback-delay", "0"});
  ASSERT_EQ(ReadWholeFile(MountPath("data.raw")), data_bytes_);  // everything cached: writes need no fetch
  server_->Kill();
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteMix(fd);
  EXPECT_EQ(::fsync(fd), -1) << "the storage host is down: fsync cannot succeed";
  EXPECT_EQ(errno, EIO);
  EXPECT_GT(XattrNumber("writeback_errors"), 0u);
  EXPECT_GT(XattrNumber("dirty_bytes"), 0u) << "nothing dropped";
  EXPECT_EQ(ReadWholeFile(MountPath("data.raw")), model_);

  server_->Start();
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
  EXPECT_EQ(XattrNumber("dirty_bytes"), 0u);
}

TEST_F(WritePathTest, DirtyDataIsNeverEvictedAndWritersWaitForRoom) {
  StartServer();
  // 64 chunks of 16 KiB: 1 MiB of cache for a 3 MiB image written end to end.
  auto mount = MountWritable({"--chunk-size", "16K", "--cache-size", "1M", "--writeback-delay", "0.2"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  for (uint64_t off = 0; off < kDataSize; off += 256 * 1024) {
    WriteAt(fd, off, std::min<uint64_t>(256 * 1024, kDataSize - off), static_cast<uint32_t>(off));
    EXPECT_LE(std::stoull(Xattr(mnt_, "dirty_bytes")), 1u << 20) << "dirty bytes stay under the cache limit";
  }
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
  EXPECT_EQ(ReadWholeFile(MountPath("data.raw")), model_);
  EXPECT_GT(std::stoull(Xattr(mnt_, "evicted_bytes")), 0u) << "clean chunks made room";
}

TEST_F(WritePathTest, AMountRefusesToDropUnwrittenDataOfAChangedImage) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "60"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteAt(fd, 4096, 100, 9);
  ::close(fd);
  mount->Kill9();
  // Someone replaces the image on the storage host behind our back.
  WriteRandomFile(SourcePath("data.raw"), kDataSize + 4096, 99);
  std::string output;
  EXPECT_NE(mount->RunExpectingFailure(&output), 0);
  EXPECT_NE(output.find("never written back"), std::string::npos) << output;
  // The bytes are still in the cache: nothing was dropped.
  std::string cached = ReadWholeFile(cache_ + "/" + kVm + "/data/data.raw");
  ASSERT_GE(cached.size(), 4096u + 100u);
  EXPECT_EQ(cached.substr(4096, 100), model_.substr(4096, 100));
}

// Writers race write-backs that an fdatasync loop keeps completing; then the
// daemon is killed with nothing in flight. A write-back's "clean" index row
// must never land after a later write's "dirty" row (it would hide the write
// after the restart: the chunk's digest no longer matches, it is dropped and
// fetched old from the storage host).
TEST_F(WritePathTest, WritesRacingWriteBackCompletionsSurviveKill9) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "0.2"});
  constexpr uint64_t kChunksPerThread = 3;
  for (int round = 0; round < 3 && !HasFatalFailure(); ++round) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        int fd = ::open(MountPath("data.raw").c_str(), O_RDWR);
        std::mt19937_64 rng(round * 10 + t);
        while (!stop.load()) {
          // Thread t owns its own chunks: no two threads write the same bytes.
          uint64_t off = kChunksPerThread * t * 65536 + rng() % (kChunksPerThread * 65536 - 4096);
          std::string b(4096, static_cast<char>(rng()));
          if (::pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)) != 4096) break;
          // Acknowledged. memcpy, not replace: threads touch disjoint bytes, never the string itself.
          std::memcpy(model_.data() + off, b.data(), b.size());
        }
        ::close(fd);
      });
    }
    std::thread syncer([&] {
      int fd = ::open(MountPath("data.raw").c_str(), O_RDWR);
      while (!stop.load()) (void)::fdatasync(fd);
      ::close(fd);
    });
    std::this_thread::sleep_for(std::chrono::seconds(2));
    stop = true;
    for (auto& w : writers) w.join();
    syncer.join();
    mount->Kill9();
    mount->Start();
    std::string got = ReadWholeFile(MountPath("data.raw"));
    ASSERT_EQ(got.size(), model_.size());
    auto diff = std::mismatch(got.begin(), got.end(), model_.begin());
    EXPECT_TRUE(diff.first == got.end()) << "round " << round << ": acknowledged byte at "
                                         << (diff.first - got.begin()) << " lost after kill -9";
  }
}

// The cache disk fills up: the write that cannot be kept fails (ENOSPC, or
// EIO when the index could not commit) and nothing before it is lost; fsync
// still puts every acknowledged write on the storage host.
TEST_F(WritePathTest, AFullCacheDiskFailsTheWriteAndLosesNothingAcknowledged) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tiny tmpfs as the cache disk";
  StartServer();
  auto cache_disk = MountTinyCacheDisk();
  ASSERT_NE(cache_disk, nullptr);
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "60"});
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  uint64_t acked = 0;
  int err = 0;
  for (uint64_t chunk = 0; chunk < kDataSize / 65536; ++chunk) {
    std::string b(65536, static_cast<char>('a' + chunk % 26));
    if (::pwrite(fd, b.data(), b.size(), static_cast<off_t>(chunk * 65536)) != 65536) {
      err = errno;
      break;
    }
    std::memcpy(model_.data() + chunk * 65536, b.data(), b.size());
    ++acked;
  }
  EXPECT_TRUE(err == ENOSPC || err == EIO) << "3 MiB of dirty data on a 1 MiB cache disk must fail: "
                                           << std::strerror(err);
  EXPECT_GT(acked, 0u);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  const std::string stored = ReadWholeFile(SourcePath("data.raw"));
  EXPECT_TRUE(stored.compare(0, acked * 65536, model_, 0, acked * 65536) == 0) << "an acknowledged write was lost";
  const uint64_t untouched = (acked + 1) * 65536;
  EXPECT_TRUE(stored.compare(untouched, std::string::npos, data_bytes_, untouched, std::string::npos) == 0)
      << "bytes never written changed";
  mount->Unmount();
}

// Unmounting while the storage host is down: the final flush gives up after
// --timeout, the daemon exits cleanly, and the next mount writes the data back.
TEST_F(WritePathTest, AnUnmountWithTheStorageHostDownKeepsDirtyDataForTheNextMount) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--timeout", "2", "--writeback-delay", "0"});
  ASSERT_EQ(ReadWholeFile(MountPath("data.raw")), data_bytes_);
  server_->Kill();
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  WriteMix(fd);
  ::close(fd);
  mount->Unmount();
  EXPECT_FALSE(IsMounted(mnt_));
  EXPECT_NE(mount->log().find("dirty bytes not written back"), std::string::npos) << mount->log();
  EXPECT_EQ(mount->log().find("AddressSanitizer"), std::string::npos);
  server_->Start();
  mount->Start();
  fd = OpenRw();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
}

// The storage host is killed while write-back PUTs are in flight and comes
// back: the image keeps its generation (the interrupted write is adopted),
// so a destination killed afterwards with dirty data mounts again and
// writes it back instead of refusing ("changed on the storage host").
TEST_F(WritePathTest, AStorageHostKilledMidWriteBackKeepsTheGeneration) {
  StartServer();
  auto mount = MountWritable({"--chunk-size", "64K", "--writeback-delay", "0", "--timeout", "10"});
  for (int round = 0; round < 3 && !HasFatalFailure(); ++round) {
    int fd = OpenRw();
    ASSERT_GE(fd, 0);
    // 256 KiB writes: PUTs are in flight most of the time.
    for (uint64_t k = 0; k < 8; ++k) WriteAt(fd, (k % 12) * 262144, 262144, static_cast<uint32_t>(round * 100 + k));
    server_->Kill();
    server_->Start();
    ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
    WriteAt(fd, 0, 4096, static_cast<uint32_t>(round));
    ::close(fd);
    mount->Kill9();
    mount->Start();  // fatal if it refuses to mount
    EXPECT_EQ(Xattr(MountPath("data.raw"), "generation"), "1") << "round " << round;
  }
  int fd = OpenRw();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), model_);
}

}  // namespace
}  // namespace affinity::testing
