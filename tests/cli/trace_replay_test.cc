// affinity-trace-replay, the real binary on real files: it reads what the
// trace says, verifies every byte, keeps the recorded timing when asked, and
// refuses a malformed trace with its line number.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
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
  EXPECT_GT(j["latency_p99_us"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("hit_ratio")) << "not on an affinityfs mount";
}

TEST_F(TraceReplayTest, AMismatchFailsTheReplay) {
  WriteTrace("0,0,4096,R\n0,65536,4096,R\n");
  ReplayRun r = Replay({"--target", dir_ / "image", "--verify", dir_ / "other"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("2 reads differ"), std::string::npos) << r.out;
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
