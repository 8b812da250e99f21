// Bad input and faults on the read path (SPEC §7), each against the real
// server and the real mount.
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

int OpenRead(const std::string& path) { return ::open(path.c_str(), O_RDONLY); }

// Rows the cache index has committed for an image (read with SQLite itself).
int64_t IndexedChunks(const std::string& index_path, const std::string& image) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(index_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* stmt = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks WHERE image=?1 AND state=1", -1, &stmt, nullptr) ==
      SQLITE_OK) {
    sqlite3_bind_text(stmt, 1, image.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW) n = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST_F(ReadPathTest, StorageHostKilledMidReadGivesEioAfterTimeoutThenRecovers) {
  StartServer();
  auto mount = Mount({"--chunk-size", "64K", "--timeout", "2", "--readahead", "0"});
  int fd = OpenRead(MountPath("root.raw"));
  ASSERT_GE(fd, 0);
  std::vector<char> buf(65536);
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), 65536);
  server_->Kill();
  // Uncached chunk: the read must fail with EIO, not hang.
  EXPECT_EQ(PreadAll(fd, buf.data(), buf.size(), 4 << 20), -EIO);
  EXPECT_NE(Xattr(MountPath("root.raw"), "fetch_errors"), "0");
  // Cached data is still served while the storage host is down.
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), 65536);
  EXPECT_EQ(0, std::memcmp(buf.data(), root_bytes_.data(), 65536));
  server_->Start();  // same port
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 4 << 20), 65536);
  EXPECT_EQ(0, std::memcmp(buf.data(), root_bytes_.data() + (4 << 20), 65536));
  ::close(fd);
}

TEST_F(ReadPathTest, StorageHostKilledWhileARequestIsInFlight) {
  // The server holds each image reply for 300 ms, so the kill lands while the
  // read's request is outstanding; the read must end with EIO, not hang.
  StartServer({"--test-delay-ms", "300"});
  auto mount = Mount({"--chunk-size", "64K", "--timeout", "2", "--readahead", "0"});
  int fd = OpenRead(MountPath("root.raw"));
  ASSERT_GE(fd, 0);
  std::vector<char> buf(1 << 20);
  ssize_t result = 0;
  std::thread reader([&] { result = PreadAll(fd, buf.data(), buf.size(), 2 << 20); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Xattr(MountPath("root.raw"), "inflight_fetches") == "0" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  server_->Kill();
  reader.join();
  EXPECT_EQ(result, -EIO);
  server_->Start();
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 2 << 20), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(0, std::memcmp(buf.data(), root_bytes_.data() + (2 << 20), buf.size()));
  ::close(fd);
}

TEST_F(ReadPathTest, CorruptResponseBodyIsNeverServed) {
  // The server flips a byte in the next response after computing its digest
  // (a named test fault: there is no other way to make a real server lie).
  StartServer({"--test-fault", "corrupt-body:1"});
  auto mount = Mount({"--chunk-size", "64K", "--readahead", "0"});
  int fd = OpenRead(MountPath("data.raw"));
  std::vector<char> buf(65536);
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), 65536);
  EXPECT_EQ(0, std::memcmp(buf.data(), data_bytes_.data(), 65536)) << "corrupt bytes reached the reader";
  EXPECT_EQ(Served("data.raw").requests, 2u) << "the corrupt reply should have been fetched again";
  ::close(fd);
}

TEST_F(ReadPathTest, PersistentlyCorruptStorageHostGivesEio) {
  StartServer({"--test-fault", "corrupt-body:100000"});
  auto mount = Mount({"--chunk-size", "64K", "--timeout", "2", "--readahead", "0"});
  int fd = OpenRead(MountPath("data.raw"));
  std::vector<char> buf(65536);
  EXPECT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), -EIO);
  EXPECT_EQ(Xattr(MountPath("data.raw"), "cached_bytes"), "0") << "corrupt bytes must not be cached";
  ::close(fd);
}

TEST_F(ReadPathTest, CorruptCacheChunkIsDetectedAndRefetched) {
  StartServer();
  {
    auto mount = Mount({"--chunk-size", "64K"});
    ASSERT_TRUE(ReadWholeFile(MountPath("data.raw")) == data_bytes_);
    mount->Unmount();
  }
  // Flip one byte of chunk 5 in the cache data file while unmounted.
  std::string data_file = cache_ + "/vm-42/data/data.raw";
  int cfd = ::open(data_file.c_str(), O_RDWR);
  ASSERT_GE(cfd, 0);
  char c;
  off_t where = 5 * 65536 + 100;
  ASSERT_EQ(::pread(cfd, &c, 1, where), 1);
  c = static_cast<char>(c ^ 0x40);
  ASSERT_EQ(::pwrite(cfd, &c, 1, where), 1);
  ::close(cfd);

  ServedCounters before = Served("data.raw");
  auto mount = Mount({"--chunk-size", "64K"});
  EXPECT_TRUE(ReadWholeFile(MountPath("data.raw")) == data_bytes_) << "a corrupt cached chunk was served";
  EXPECT_EQ(Xattr(MountPath("data.raw"), "corrupt_chunks"), "1");
  ServedCounters after = Served("data.raw");
  EXPECT_EQ(after.bytes - before.bytes, 65536u) << "exactly the corrupt chunk is fetched again";
}

TEST_F(ReadPathTest, DaemonKilledWithSigkillKeepsCommittedChunks) {
  StartServer();
  std::string index = cache_ + "/vm-42/index.sqlite";
  {
    auto mount = Mount({"--chunk-size", "64K", "--readahead", "0"});
    int fd = OpenRead(MountPath("root.raw"));
    std::vector<char> buf(1 << 20);
    ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), 1 << 20);
    ::close(fd);
    // Wait (bounded) until the batched writer has committed every cached chunk
    // (16, plus whatever the kernel's own read-ahead asked for).
    auto cached_chunks = [&] {
      return static_cast<int64_t>(std::stoull(Xattr(MountPath("root.raw"), "cached_bytes")) / 65536);
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((IndexedChunks(index, "root.raw") != cached_chunks()) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GE(cached_chunks(), 16);
    ASSERT_EQ(IndexedChunks(index, "root.raw"), cached_chunks());
    // Start more reads and kill the daemon in the middle of them.
    std::thread reader([&] {
      int fd2 = OpenRead(MountPath("root.raw"));
      std::vector<char> b(1 << 20);
      for (int i = 1; i < 8; ++i) PreadAll(fd2, b.data(), b.size(), static_cast<off_t>(i) << 20);
      ::close(fd2);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    mount->Kill9();
    reader.join();
  }
  ServedCounters before = Served("root.raw");
  auto mount = Mount({"--chunk-size", "64K", "--readahead", "0"});
  // O_DIRECT: no kernel read-ahead, so only the committed first MiB is asked
  // for (buffered reads could pull in chunks the kill legitimately lost).
  int fd = ::open(MountPath("root.raw").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  std::vector<char> buf(1 << 20);
  ASSERT_EQ(PreadAll(fd, buf.data(), buf.size(), 0), 1 << 20);
  EXPECT_EQ(0, std::memcmp(buf.data(), root_bytes_.data(), buf.size()));
  EXPECT_EQ(Served("root.raw").bytes, before.bytes) << "committed chunks were fetched again after kill -9";
  // Whatever the kill interrupted is either intact or fetched again: never torn.
  EXPECT_TRUE(ReadWholeFile(MountPath("root.raw")) == root_bytes_);
  EXPECT_EQ(Xattr(MountPath("root.raw"), "corrupt_chunks"), "0");
  ::close(fd);
}

TEST_F(ReadPathTest, FullCacheDiskStillServesReads) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tiny tmpfs as the cache disk";
  StartServer();
  auto cache_disk = MountTinyCacheDisk();
  ASSERT_NE(cache_disk, nullptr);
  {
    auto mount = Mount({"--chunk-size", "64K"});
    // 3 MiB through a 1 MiB cache disk: stores fail with ENOSPC, reads must not.
    EXPECT_TRUE(ReadWholeFile(MountPath("data.raw")) == data_bytes_);
    EXPECT_NE(Xattr(MountPath("data.raw"), "store_errors"), "0");
    mount->Unmount();
  }
}

TEST_F(ReadPathTest, ServerCertificateFromAnotherCaIsRefused) {
  StartServer({}, /*other_ca_cert=*/true);
  auto mount = MakeMount({"--timeout", "3"});
  std::string output;
  int status = mount->RunExpectingFailure(&output);
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("certificate"), std::string::npos) << output;
  EXPECT_FALSE(IsMounted(mnt_));
}

TEST_F(ReadPathTest, BadMountOptionsFailClearlyAndMountNothing) {
  StartServer();
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  };
  std::vector<Case> cases = {
      {{"--chunk-size", "3000"}, "power of two"},
      {{"--chunk-size", "8M"}, "power of two"},
      {{"--cache-size", "100K"}, "--cache-size"},
      {{"--timeout", "0"}, "--timeout"},
      {{"--timeout", "soon"}, "timeout"},
      {{"--bogus"}, "bogus"},
      {{"-o", "no_such_fuse_option"}, "no_such_fuse_option"},
  };
  for (const Case& c : cases) {
    auto mount = MakeMount(c.args);
    std::string output;
    int status = mount->RunExpectingFailure(&output);
    EXPECT_NE(status, 0) << c.expect;
    EXPECT_NE(output.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in:\n" << output;
    EXPECT_FALSE(IsMounted(mnt_));
  }
}

TEST_F(ReadPathTest, UnknownVmAndMissingFilesFailClearly) {
  StartServer();
  MountOptions o;
  o.mountpoint = mnt_;
  o.storage_url = server_->url();
  o.vm = "vm-does-not-exist";
  o.cache_dir = cache_;
  o.certs = &certs_;
  {
    AffinityfsMount mount(o);
    std::string output;
    EXPECT_NE(mount.RunExpectingFailure(&output), 0);
    EXPECT_NE(output.find("not found"), std::string::npos) << output;
  }
  o.vm = "../etc";
  {
    AffinityfsMount mount(o);
    std::string output;
    EXPECT_NE(mount.RunExpectingFailure(&output), 0);
    EXPECT_NE(output.find("vm"), std::string::npos) << output;
  }
  o.vm = kVm;
  o.ca_file = dir_ / "missing-ca.pem";
  {
    AffinityfsMount mount(o);
    std::string output;
    EXPECT_NE(mount.RunExpectingFailure(&output), 0);
    EXPECT_NE(output.find("missing-ca.pem"), std::string::npos) << output;
  }
  o.ca_file.clear();
  o.mountpoint = dir_ / "no-such-dir";
  {
    AffinityfsMount mount(o);
    std::string output;
    EXPECT_NE(mount.RunExpectingFailure(&output), 0);
    EXPECT_NE(output.find("mount point"), std::string::npos) << output;
  }
  EXPECT_FALSE(IsMounted(mnt_));
}

}  // namespace
}  // namespace affinity::testing
