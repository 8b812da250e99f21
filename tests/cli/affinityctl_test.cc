#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ctl/stats_format.h"
#include "tests/support/test_env.h"

namespace affinity::ctl {
namespace {

TEST(StatsFormat, HumanisesBytesRatiosAndLatencies) {
  EXPECT_EQ(HumanValue("cached_bytes", "1610612736"), "1.5 GiB");
  EXPECT_EQ(HumanValue("bytes_fetched", "512"), "512 B");
  EXPECT_EQ(HumanValue("hit_ratio", "0.9312"), "93.1 %");
  EXPECT_EQ(HumanValue("miss_latency_p99_us", "2500"), "2.50 ms");
  EXPECT_EQ(HumanValue("hits", "42"), "42");
  EXPECT_EQ(HumanValue("cache_size_limit", "0"), "unlimited");
  EXPECT_EQ(HumanValue("storage_url", "https://h:1"), "https://h:1");
}

TEST(StatsFormat, TableIsAlignedAndJsonHasNumbers) {
  Attributes a = {{"hits", "3"}, {"hit_ratio", "0.5000"}, {"vm", "vm-42"}};
  EXPECT_EQ(FormatTable(a), "hits       3\nhit_ratio  50.0 %\nvm         vm-42\n");
  auto j = nlohmann::json::parse(FormatJson(a));
  EXPECT_EQ(j["hits"], 3);
  EXPECT_DOUBLE_EQ(j["hit_ratio"].get<double>(), 0.5);
  EXPECT_EQ(j["vm"], "vm-42");
}

std::string RunShell(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

TEST(AffinityctlStats, ReadsRealXattrsAndFailsClearlyElsewhere) {
  testing::TempDir dir;
  std::string file = dir / "f";
  std::ofstream(file) << "x";
  if (::setxattr(file.c_str(), "user.affinity.hits", "7", 1, 0) != 0) {
    GTEST_SKIP() << "this filesystem has no user xattrs";
  }
  ::setxattr(file.c_str(), "user.affinity.cached_bytes", "2048", 4, 0);
  int status = 0;
  std::string bin = testing::BinaryPath("affinityctl");
  std::string out = RunShell(bin + " stats --json " + file, &status);
  ASSERT_EQ(status, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["hits"], 7);
  EXPECT_EQ(j["cached_bytes"], 2048);
  out = RunShell(bin + " stats " + file, &status);
  EXPECT_NE(out.find("2.0 KiB"), std::string::npos) << out;
  out = RunShell(bin + " stats " + dir.path(), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("is it on an affinityfs mount"), std::string::npos) << out;
  out = RunShell(bin + " stats " + dir / "missing", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
}

}  // namespace
}  // namespace affinity::ctl
