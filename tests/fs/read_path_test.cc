// Read path end to end: real storage host, real mount, real reads.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <barrier>
#include <cerrno>
#include <cstdio>
#include <random>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST_F(ReadPathTest, RandomReadsAreByteExactAcrossChunksAndPastEof) {
  StartServer();
  auto mount = Mount({"--chunk-size", "64K"});
  FdCloser fd(::open(MountPath("root.raw").c_str(), O_RDONLY));
  ASSERT_GE(fd.get(), 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kRootSize);

  std::mt19937_64 rng(20261124);  // fixed seed: failures reproduce
  std::vector<char> buf(3 << 20);
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % (kRootSize + 100000);  // some start past EOF
    size_t len = 1 + rng() % (i % 10 == 0 ? buf.size() : 200000);
    ssize_t n = PreadAll(fd.get(), buf.data(), len, static_cast<off_t>(off));
    uint64_t expect = off >= kRootSize ? 0 : std::min<uint64_t>(len, kRootSize - off);
    ASSERT_EQ(n, static_cast<ssize_t>(expect)) << "read " << len << " at " << off;
    ASSERT_EQ(0, std::memcmp(buf.data(), root_bytes_.data() + std::min<uint64_t>(off, kRootSize), expect))
        << "bytes differ for read " << len << " at " << off;
  }
  // The other image too, in one pass.
  std::string data = ReadWholeFile(MountPath("data.raw"));
  EXPECT_TRUE(data == data_bytes_);
}

// A read grant: the host does not own the images. Writes are refused with
// EROFS (docs/writes.md); the namespace and the size never change.
TEST_F(ReadPathTest, EveryWritePathIsRefusedWithoutTheOwnersGrant) {
  StartServer();
  auto mount = Mount();
  int fd = ::open(MountPath("data.raw").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << "opening for writing is allowed (QEMU does it before it owns the disk): " << std::strerror(errno);
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::fallocate(fd, 0, 0, 4096), -1);
  EXPECT_EQ(errno, EROFS);
  ::close(fd);
  EXPECT_EQ(::open(MountPath("data.raw").c_str(), O_RDWR | O_TRUNC), -1);
  EXPECT_EQ(errno, EPERM) << "images keep their size";
  EXPECT_EQ(::open(MountPath("new.raw").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::mkdir(MountPath("dir").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink(MountPath("data.raw").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::rename(MountPath("data.raw").c_str(), MountPath("moved.raw").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::truncate(MountPath("data.raw").c_str(), 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::setxattr(MountPath("data.raw").c_str(), "user.affinity.control", "refresh", 7, 0), -1);
  EXPECT_EQ(errno, EROFS) << "the control attribute lives on the mount's root only";
  EXPECT_EQ(ReadWholeFile(MountPath("data.raw")), data_bytes_) << "and the image is untouched";
  EXPECT_EQ(ReadWholeFile(SourcePath("data.raw")), data_bytes_);
  EXPECT_NE(mount->log().find("does not own the VM's images"), std::string::npos) << "a clear log line";
}

TEST_F(ReadPathTest, TraceReplayOnTheMountReportsTheHitRatioOfEachRun) {
  StartServer();
  auto mount = Mount({"--readahead", "0"});
  {
    std::ofstream trace(dir_ / "trace.csv");
    trace << "time_s,offset,length,op\n";
    for (int i = 0; i < 8; ++i) trace << "0," << i * 262144 << ",4096,R\n";  // 8 cold chunks
  }
  auto replay = [&](int run) {
    Subprocess p;
    const std::string out = dir_ / ("replay." + std::to_string(run));
    EXPECT_TRUE(p.Start({BinaryPath("affinity-trace-replay"), "--trace", dir_ / "trace.csv", "--target",
                         MountPath("data.raw"), "--verify", SourcePath("data.raw"), "--direct", "--json"},
                        out));
    EXPECT_EQ(p.Wait(std::chrono::seconds(30)), 0) << ReadWholeFile(out);
    return nlohmann::json::parse(ReadWholeFile(out), nullptr, false);
  };
  auto cold = replay(1);
  auto warm = replay(2);
  ASSERT_TRUE(cold.is_object() && warm.is_object());
  EXPECT_EQ(cold["mismatches"], 0);
  EXPECT_EQ(cold["hit_ratio"], 0.0) << cold.dump();
  EXPECT_EQ(warm["hit_ratio"], 1.0) << warm.dump();
  EXPECT_EQ(warm["reads"], 8);
}

TEST_F(ReadPathTest, SixteenThreadsOnColdChunksFetchEachChunkOnce) {
  StartServer();
  auto mount = Mount({"--chunk-size", "64K", "--readahead", "0"});
  constexpr int kThreads = 16;
  constexpr uint64_t kRegion = 2 << 20;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      FdCloser fd(::open(MountPath("root.raw").c_str(), O_RDONLY));
      std::vector<char> buf(kRegion);
      start.arrive_and_wait();
      // Different read sizes and orders over the same cold region.
      size_t step = (t % 4 + 1) * 16384;
      for (uint64_t off = 0; off < kRegion; off += step) {
        uint64_t pos = t % 2 == 0 ? off : kRegion - step - off + (kRegion % step);
        ssize_t n = PreadAll(fd.get(), buf.data(), step, static_cast<off_t>(pos));
        if (n != static_cast<ssize_t>(step) || std::memcmp(buf.data(), root_bytes_.data() + pos, step) != 0) {
          mismatches++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  ServedCounters served = Served("root.raw");
  uint64_t cached = std::stoull(Xattr(MountPath("root.raw"), "cached_bytes"));
  // Every byte the server sent is in the cache exactly once: no chunk was fetched twice.
  EXPECT_EQ(served.bytes, cached);
  EXPECT_GE(cached, kRegion);
  EXPECT_LE(served.requests, cached / (64 << 10)) << "at most one request per chunk";
  EXPECT_EQ(std::stoull(Xattr(MountPath("root.raw"), "bytes_fetched")), served.bytes);
}

TEST_F(ReadPathTest, AdjacentMissesAreCoalescedIntoOneRangeRequest) {
  StartServer();
  auto mount = Mount({"--chunk-size", "64K", "--readahead", "0"});
  FdCloser fd(::open(MountPath("data.raw").c_str(), O_RDONLY | O_DIRECT));
  ASSERT_GE(fd.get(), 0);
  std::vector<char> buf(1 << 20);
  // One 1 MiB read = 16 cold 64 KiB chunks; the kernel sends it as one FUSE read.
  ASSERT_EQ(PreadAll(fd.get(), buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(0, std::memcmp(buf.data(), data_bytes_.data(), buf.size()));
  ServedCounters served = Served("data.raw");
  EXPECT_EQ(served.bytes, 1u << 20);
  // The kernel normally sends the read as one FUSE read; under memory
  // pressure it may split it when it cannot pin all the buffer's pages at
  // once. Either way no FUSE read makes more than one request for its 16
  // cold chunks (and no chunk is fetched twice: the byte count above).
  const uint64_t missed_reads = std::stoull(Xattr(MountPath("data.raw"), "misses"));
  EXPECT_GE(served.requests, 1u);
  EXPECT_LE(served.requests, missed_reads);
  EXPECT_LE(served.requests, 2u);
}

TEST_F(ReadPathTest, RemountServesCachedDataWithoutFetching) {
  StartServer();
  {
    auto mount = Mount();
    EXPECT_TRUE(ReadWholeFile(MountPath("root.raw")) == root_bytes_);
    mount->Unmount();
  }
  ServedCounters before = Served("root.raw");
  EXPECT_GE(before.bytes, kRootSize);
  auto mount = Mount();
  EXPECT_TRUE(ReadWholeFile(MountPath("root.raw")) == root_bytes_);
  ServedCounters after = Served("root.raw");
  EXPECT_EQ(after.requests, before.requests) << "remount fetched again";
  EXPECT_EQ(after.bytes, before.bytes);
  EXPECT_EQ(Xattr(MountPath("root.raw"), "misses"), "0");
  EXPECT_NE(Xattr(MountPath("root.raw"), "hits"), "0");
  EXPECT_EQ(Xattr(MountPath("root.raw"), "hit_ratio"), "1.0000");
}

TEST_F(ReadPathTest, XattrsAreListedByGetfattrAndMatchWhatWasRead) {
  StartServer();
  auto mount = Mount({"--chunk-size", "128K"});
  std::string bytes = ReadWholeFile(MountPath("data.raw"));
  ASSERT_TRUE(bytes == data_bytes_);
  std::string out = RunCommand("getfattr -d -m '^user\\.affinity\\.' '" + MountPath("data.raw") + "' 2>&1");
  for (const char* name :
       {"hits", "misses", "hit_ratio", "bytes_from_cache", "bytes_fetched", "cached_bytes", "chunk_size",
        "miss_latency_p50_us", "miss_latency_p99_us", "fetch_errors", "generation"}) {
    EXPECT_NE(out.find(std::string("user.affinity.") + name + "="), std::string::npos) << name << " in\n" << out;
  }
  ServedCounters served = Served("data.raw");
  EXPECT_EQ(Xattr(MountPath("data.raw"), "cached_bytes"), std::to_string(kDataSize));
  EXPECT_EQ(Xattr(MountPath("data.raw"), "bytes_fetched"), std::to_string(served.bytes));
  EXPECT_EQ(Xattr(MountPath("data.raw"), "chunk_size"), "131072");
  EXPECT_EQ(Xattr(MountPath("data.raw"), "fetch_errors"), "0");
  EXPECT_NE(Xattr(MountPath("data.raw"), "misses"), "0");
  EXPECT_GT(std::stoull(Xattr(MountPath("data.raw"), "miss_latency_p99_us")), 0u);
  // Root: totals over both images.
  std::string root_out = RunCommand("getfattr -d -m '^user\\.affinity\\.' '" + mnt_ + "' 2>&1");
  EXPECT_NE(root_out.find("user.affinity.storage_url=\"" + server_->url() + "\""), std::string::npos) << root_out;
  EXPECT_EQ(Xattr(mnt_, "cached_bytes"), std::to_string(kDataSize));
  EXPECT_EQ(Xattr(mnt_, "images"), "2");
}

TEST_F(ReadPathTest, CacheSizeLimitEvictsLeastRecentlyUsedChunks) {
  StartServer();
  constexpr uint64_t kLimit = 4 << 20;  // 64 chunks of 64 KiB; the image is 8 MiB
  auto mount = Mount({"--chunk-size", "64K", "--cache-size", "4M", "--readahead", "0"});
  EXPECT_TRUE(ReadWholeFile(MountPath("root.raw")) == root_bytes_);
  // The evictor runs in the background; wait (bounded) until it catches up.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::stoull(Xattr(MountPath("root.raw"), "cached_bytes")) > kLimit &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LE(std::stoull(Xattr(MountPath("root.raw"), "cached_bytes")), kLimit);
  EXPECT_GT(std::stoull(Xattr(MountPath("root.raw"), "evicted_bytes")), 0u);
  struct stat st{};
  ASSERT_EQ(::stat((cache_ + "/vm-42/data/root.raw").c_str(), &st), 0);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, kLimit + (256 << 10)) << "holes were not punched";
  // The most recently read tail is still cached; the head was evicted and is fetched again.
  ServedCounters before = Served("root.raw");
  FdCloser fd(::open(MountPath("root.raw").c_str(), O_RDONLY | O_DIRECT));
  std::vector<char> buf(65536);
  ASSERT_EQ(PreadAll(fd.get(), buf.data(), buf.size(), static_cast<off_t>(kRootSize - 12345 - 65536)), 65536);
  EXPECT_EQ(Served("root.raw").requests, before.requests) << "the tail should have stayed cached";
  ASSERT_EQ(PreadAll(fd.get(), buf.data(), buf.size(), 0), 65536);
  EXPECT_EQ(0, std::memcmp(buf.data(), root_bytes_.data(), 65536));
  EXPECT_GT(Served("root.raw").requests, before.requests) << "the head should have been evicted";
}

TEST_F(ReadPathTest, MountCommandWithFuseAffinityfsTypeUsesTheHelper) {
  if (::geteuid() != 0) GTEST_SKIP() << "mount(8) needs root";
  // mount(8) runs /sbin/mount.fuse.affinityfs for -t fuse.affinityfs.
  const std::string link = "/sbin/mount.fuse.affinityfs";
  struct stat st{};
  bool installed_here = false;
  if (::lstat(link.c_str(), &st) != 0) {
    ASSERT_EQ(::symlink(AFFINITY_SOURCE_DIR "/mount-helpers/mount.affinityfs", link.c_str()), 0) << std::strerror(errno);
    installed_here = true;
  }
  struct Uninstall {
    bool active;
    std::string path;
    ~Uninstall() {
      if (active) ::unlink(path.c_str());
    }
  } uninstall{installed_here, link};
  StartServer();
  GrantSpec g;
  g.holder_cert = certs_.client_cert;
  g.vm = kVm;
  const std::string grant = dir_ / "vm-42.grant";
  WriteGrantFile(grant, MintGrant(certs_, g));
  std::string options = "storage=" + server_->url() + ",cache_dir=" + cache_ + ",ca_file=" + certs_.ca_cert +
                        ",cert=" + certs_.client_cert + ",key=" + certs_.client_key + ",grant=" + grant +
                        ",chunk_size=128K,_netdev";
  std::string cmd = "AFFINITYFS_BIN=" + BinaryPath("affinityfs") + " mount -t fuse.affinityfs vm-42 '" + mnt_ +
                    "' -o '" + options + "' 2>&1";
  std::string out = RunCommand(cmd);
  struct Unmount {
    std::string path;
    ~Unmount() {
      if (IsMounted(path)) std::system(("fusermount3 -u -z '" + path + "'").c_str());
    }
  } unmount{mnt_};
  ASSERT_TRUE(IsMounted(mnt_)) << out;
  EXPECT_TRUE(ReadWholeFile(MountPath("data.raw")) == data_bytes_);
  EXPECT_EQ(Xattr(MountPath("data.raw"), "chunk_size"), "131072");
  EXPECT_EQ(std::system(("fusermount3 -u '" + mnt_ + "'").c_str()), 0);
}

}  // namespace
}  // namespace affinity::testing
