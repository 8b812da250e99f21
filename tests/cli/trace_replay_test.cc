// affinity-trace-replay, the real binary on real files: it reads what the
// trace says, verifies every byte, keeps the recorded timing when asked, and
// refuses a malformed trace with its line number; --drop-page-cache empties
// the target's page cache first.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {

struct ReplayRun {
  int status = -1;
  std::string out;
};

class TraceReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteRandomFile(dir_ / "image", 4 << 20, 9);
    WriteRandomFile(dir_ / "other", 4 << 20, 10);
  }
  void WriteTrace(const std::string& text) { std::ofstream(dir_ / "trace.csv") << text; }
  ReplayRun Replay(std::vector<std::string> args) {
    std::vector<std::string> argv = {BinaryPath("affinity-trace-replay"), "--trace", dir_ / "trace.csv"};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p;
    const std::string out = dir_ / ("out." + std::to_string(++runs_));
    EXPECT_TRUE(p.Start(argv, out));
    ReplayRun r;
    r.status = p.Wait(std::chrono::seconds(30));
    r.out = ReadWholeFile(out);
    return r;
  }
  TempDir dir_;
  int runs_ = 0;
};

TEST_F(TraceReplayTest, ReplaysReadsVerifiesThemAndSkipsWrites) {
  WriteTrace("time_s,offset,length,op\n0.000,0,4096,R\n0.001,1048576,65536,R\n0.002,8192,4096,W\n"
             "0.003,4190208,8192,R\n");  // the last read runs 4096 bytes past the end
  ReplayRun r = Replay({"--target", dir_ / "image", "--verify", dir_ / "image", "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(j["reads"], 3);
  EXPECT_EQ(j["bytes"], 4096 + 65536 + 4096);
  EXPECT_EQ(j["short_reads"], 1);
  EXPECT_EQ(j["writes_skipped"], 1);
  EXPECT_EQ(j["mismatches"], 0);
  EXPECT_EQ(j["verified"], true);
  EXPECT_GT(j["latency_p99_us"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("hit_ratio")) << "not on an affinityfs mount";
  // The keys the side-by-side benchmark (issue 7) reads.
  EXPECT_GT(j["seconds"].get<double>(), 0.0);
  EXPECT_EQ(j["seconds"], j["total_s"]);
  EXPECT_NEAR(j["throughput_mib_s"].get<double>(), (4096 + 65536 + 4096) / 1048576.0 / j["seconds"].get<double>(),
              1e-6 * j["throughput_mib_s"].get<double>());
  EXPECT_EQ(j["p50_us"], j["latency_p50_us"]);
  EXPECT_EQ(j["p99_us"], j["latency_p99_us"]);
  EXPECT_EQ(j["max_us"], j["latency_max_us"]);
  EXPECT_EQ(j["page_cache_dropped"], false);
}

TEST_F(TraceReplayTest, AMismatchFailsTheReplay) {
  WriteTrace("0,0,4096,R\n0,65536,4096,R\n");
  ReplayRun r = Replay({"--target", dir_ / "image", "--verify", dir_ / "other"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("2 reads differ"), std::string::npos) << r.out;

  // Same bytes but one: only that read is counted, and --json reports it.
  const std::string copy = dir_ / "copy";
  {
    std::ofstream(copy, std::ios::binary) << ReadWholeFile(dir_ / "image");
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(65536 + 100);
    f.put(static_cast<char>(ReadWholeFile(dir_ / "image")[65536 + 100] ^ 1));
  }
  ReplayRun j = Replay({"--target", dir_ / "image", "--verify", copy, "--json"});
  EXPECT_EQ(j.status, 1);
  // stdout and stderr share the file, and stderr's line may come first.
  const size_t brace = j.out.find('{');
  ASSERT_NE(brace, std::string::npos) << j.out;
  auto report = nlohmann::json::parse(j.out.substr(brace, j.out.find('\n', brace) - brace));
  EXPECT_EQ(report["mismatches"], 1);
  EXPECT_EQ(report["reads"], 2);
  EXPECT_NE(j.out.find("1 reads differ"), std::string::npos) << j.out;

  ReplayRun unverified = Replay({"--target", dir_ / "image", "--json"});
  ASSERT_EQ(unverified.status, 0) << unverified.out;
  EXPECT_EQ(nlohmann::json::parse(unverified.out)["mismatches"], 0);
  EXPECT_EQ(nlohmann::json::parse(unverified.out)["verified"], false);
}

// Pages of `path` in the page cache, out of its pages (mincore on a mapping).
std::pair<size_t, size_t> ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const off_t size = ::lseek(fd, 0, SEEK_END);
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), pages = (static_cast<size_t>(size) + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  EXPECT_EQ(::mincore(map, static_cast<size_t>(size), vec.data()), 0);
  ::munmap(map, static_cast<size_t>(size));
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return {resident, pages};
}

TEST_F(TraceReplayTest, DropPageCacheEmptiesTheTargetsPageCacheFirst) {
  const std::string image = dir_ / "image";
  WriteTrace("0,0,4096,R\n");
  ReplayRun r = Replay({"--target", image, "--json", "--drop-page-cache"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["page_cache_dropped"], true);

  struct statfs fs {};
  ASSERT_EQ(::statfs(image.c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs keeps its pages whatever posix_fadvise says";
  {  // clean (written back) and read: every page cached
    int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
    ReadWholeFile(image);
  }
  ASSERT_EQ(ResidentPages(image).first, ResidentPages(image).second);
  r = Replay({"--target", image, "--json", "--drop-page-cache"});
  ASSERT_EQ(r.status, 0) << r.out;
  // Only the replayed read (and the kernel's read-ahead behind it) came back.
  const auto [resident, pages] = ResidentPages(image);
  EXPECT_LT(resident, pages / 2) << resident << " of " << pages << " pages still cached";
}

TEST_F(TraceReplayTest, TimedModeKeepsTheRecordedTiming) {
  WriteTrace("0.0,0,4096,R\n0.3,4096,4096,R\n0.6,8192,4096,R\n");
  ReplayRun fast = Replay({"--target", dir_ / "image", "--json"});
  ReplayRun timed = Replay({"--target", dir_ / "image", "--json", "--timed"});
  ASSERT_EQ(fast.status, 0) << fast.out;
  ASSERT_EQ(timed.status, 0) << timed.out;
  EXPECT_LT(nlohmann::json::parse(fast.out)["total_s"].get<double>(), 0.3);
  EXPECT_GE(nlohmann::json::parse(timed.out)["total_s"].get<double>(), 0.6);
}

TEST_F(TraceReplayTest, MalformedTracesAreRefusedWithTheLine) {
  for (const char* bad : {"0,0,4096,X\n", "0,-5,4096,R\n", "0,0,0,R\n", "zero,0,4096,R\n", "0,0,4096\n",
                          "0,0,4096,R,extra\n", "nan,0,4096,R\n"}) {
    WriteTrace(std::string("0,0,4096,R\n") + bad);
    ReplayRun r = Replay({"--target", dir_ / "image"});
    EXPECT_EQ(r.status, 1) << bad;
    EXPECT_NE(r.out.find("trace.csv:2: expected time_s,offset,length,op"), std::string::npos) << r.out;
  }
  WriteTrace("0,0,4096,R\n");
  ReplayRun missing = Replay({"--target", dir_ / "nope"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("No such file"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace affinity::testing
