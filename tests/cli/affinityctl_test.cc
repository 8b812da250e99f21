// affinityctl stats: the pure formatting functions, then the real binary on
// user.* attributes set on a plain file (no mount needed).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ctl/stats_format.h"
#include "tests/support/test_env.h"

namespace affinity::ctl {
namespace {

TEST(StatsFormat, ParseNumberIsStrict) {
  EXPECT_EQ(ParseNumber("42"), Number(uint64_t{42}));
  EXPECT_EQ(ParseNumber("18446744073709551615"), Number(uint64_t{18446744073709551615ULL}));
  EXPECT_EQ(ParseNumber("-3"), Number(int64_t{-3}));
  EXPECT_EQ(ParseNumber("0.9312"), Number(0.9312));
  for (const char* text : {"", "-", "inf", "nan", "-inf", "0x10", " 1", "1 ", "1,5", "https://h:1", "vm-42", ".5",
                           "1e999"}) {
    EXPECT_FALSE(ParseNumber(text).has_value()) << "'" << text << "'";
  }
}

TEST(StatsFormat, HumanisesBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1 KiB");
  EXPECT_EQ(HumanBytes(262144), "256 KiB");
  EXPECT_EQ(HumanBytes(1610612736), "1.5 GiB");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(18446744073709551615ULL), "16.0 EiB");
}

TEST(StatsFormat, HumanValueFollowsTheAttributeName) {
  EXPECT_EQ(HumanValue("cached_bytes", "1610612736"), "1.5 GiB");
  EXPECT_EQ(HumanValue("bytes_fetched", "512"), "512 B");
  EXPECT_EQ(HumanValue("chunk_size", "262144"), "256 KiB");
  EXPECT_EQ(HumanValue("cache_size_limit", "0"), "unlimited");
  EXPECT_EQ(HumanValue("cache_size_limit", "53687091200"), "50 GiB");
  EXPECT_EQ(HumanValue("hit_ratio", "0.9312"), "93.12%");
  EXPECT_EQ(HumanValue("hit_ratio", "1.0000"), "100.00%");
  EXPECT_EQ(HumanValue("hit_ratio", "0.9999"), "99.99%");
  EXPECT_EQ(HumanValue("miss_latency_p50_us", "740"), "740 us");
  EXPECT_EQ(HumanValue("miss_latency_p99_us", "2500"), "2.50 ms");
  EXPECT_EQ(HumanValue("miss_latency_p99_us", "3200000"), "3.20 s");
  EXPECT_EQ(HumanValue("hits", "42"), "42");
  EXPECT_EQ(HumanValue("storage_url", "https://h:1"), "https://h:1");
  // A value that is not the promised number is shown as it is.
  EXPECT_EQ(HumanValue("cached_bytes", "n/a"), "n/a");
  EXPECT_EQ(HumanValue("hit_ratio", "nan"), "nan");
  EXPECT_EQ(HumanValue("miss_latency_p50_us", "-1"), "-1");
}

TEST(StatsFormat, TableIsAlignedInTheGivenOrder) {
  Attributes a = {{"hits", "3"}, {"hit_ratio", "0.5000"}, {"vm", "vm-42"}, {"cached_bytes", "2048"}};
  EXPECT_EQ(FormatTable(a),
            "hits          3\n"
            "hit_ratio     50.00%\n"
            "vm            vm-42\n"
            "cached_bytes  2 KiB\n");
  EXPECT_EQ(FormatTable({}), "");
}

TEST(StatsFormat, PrefetchProgressBar) {
  Attributes a = {{"prefetch_state", "running"},      {"prefetch_planned_bytes", "4194304"},
                  {"prefetch_done_bytes", "1048576"}, {"prefetch_queued", "48"},
                  {"prefetch_accuracy", "0.9000"},    {"prefetch_coverage", "0.7500"}};
  EXPECT_EQ(FormatPrefetchProgress(a, 20),
            "prefetch [#####...............]  25% 1 MiB of 4 MiB, 48 queued, running, accuracy 90.00%, "
            "coverage 75.00%\n");
  a[0].second = "off";
  EXPECT_EQ(FormatPrefetchProgress(a, 20), "");
  EXPECT_EQ(FormatPrefetchProgress({{"hits", "1"}}, 20), "") << "an image file has no prefetch line";
}

TEST(StatsFormat, JsonHasNumbersAsNumbersAndKeepsOrder) {
  Attributes a = {{"hits", "3"},        {"hit_ratio", "0.5000"}, {"vm", "vm-42"},
                  {"storage_url", "https://127.0.0.1:8443"}, {"delta", "-7"}, {"odd", "inf"}};
  std::string text = FormatJson(a);
  auto j = nlohmann::ordered_json::parse(text);
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(j["hits"].is_number_unsigned());
  EXPECT_EQ(j["hits"], 3);
  EXPECT_TRUE(j["hit_ratio"].is_number_float());
  EXPECT_DOUBLE_EQ(j["hit_ratio"].get<double>(), 0.5);
  EXPECT_EQ(j["vm"], "vm-42");
  EXPECT_EQ(j["storage_url"], "https://127.0.0.1:8443");
  EXPECT_EQ(j["delta"], -7);
  EXPECT_EQ(j["odd"], "inf");
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"hits", "hit_ratio", "vm", "storage_url", "delta", "odd"}));
  EXPECT_EQ(FormatJson({}), "{}");
  // Bytes that are not UTF-8 do not make the dump throw.
  EXPECT_NO_THROW(nlohmann::json::parse(FormatJson({{"raw", std::string("\xff\xfe", 2)}})));
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class AffinityctlStats : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = dir_ / "root.raw";
    std::ofstream(file_) << "x";
    if (::setxattr(file_.c_str(), "user.affinity.hits", "7", 1, 0) != 0) {
      GTEST_SKIP() << "the filesystem of " << dir_.path() << " has no user xattrs (" << std::strerror(errno)
                   << "); set TMPDIR to one that has";
    }
    Set("user.affinity.hit_ratio", "0.8750");
    Set("user.affinity.cached_bytes", "2048");
    Set("user.affinity.storage_url", "https://127.0.0.1:8443");
    Set("user.other", "not ours");
  }
  void Set(const std::string& name, const std::string& value) {
    ASSERT_EQ(::setxattr(file_.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << std::strerror(errno);
  }
  std::string Ctl(const std::string& args) { return "'" + testing::BinaryPath("affinityctl") + "' " + args; }

  testing::TempDir dir_;
  std::string file_;
};

TEST_F(AffinityctlStats, PrintsJsonWithOnlyAffinityAttributes) {
  CommandResult r = RunCommand(Ctl("stats --json '" + file_ + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j.size(), 4u) << r.output;
  EXPECT_EQ(j["hits"], 7);
  EXPECT_DOUBLE_EQ(j["hit_ratio"].get<double>(), 0.875);
  EXPECT_EQ(j["cached_bytes"], 2048);
  EXPECT_EQ(j["storage_url"], "https://127.0.0.1:8443");
  EXPECT_FALSE(j.contains("other"));
}

TEST_F(AffinityctlStats, PrintsAReadableTable) {
  CommandResult r = RunCommand(Ctl("stats '" + file_ + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("hits          7\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hit_ratio     87.50%\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cached_bytes  2 KiB\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("other"), std::string::npos) << r.output;
}

TEST_F(AffinityctlStats, ReadsLargeValues) {
  std::string big(3000, 'v');  // more than the first 256-byte buffer; ext4 takes up to ~4 KiB
  Set("user.affinity.big", big);
  CommandResult r = RunCommand(Ctl("stats --json '" + file_ + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["big"], big);
}

TEST_F(AffinityctlStats, FailsClearlyOffAMountAndOnAMissingPath) {
  CommandResult r = RunCommand(Ctl("stats '" + dir_.path() + "'"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has no user.affinity.* attributes: is it on an affinityfs mount?"), std::string::npos)
      << r.output;
  r = RunCommand(Ctl("stats '" + (dir_ / "missing") + "'"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(dir_ / "missing"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No such file or directory"), std::string::npos) << r.output;
  r = RunCommand(Ctl("stats"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("path is required"), std::string::npos) << r.output;
  r = RunCommand(Ctl("stats --interval 2 '" + file_ + "'"));
  EXPECT_NE(r.exit_code, 0) << "--interval needs --watch: " << r.output;
}

TEST_F(AffinityctlStats, WatchRefreshesUntilStopped) {
  // Refreshes every 0.05 s until `timeout` interrupts it: at least two tables.
  CommandResult r = RunCommand("timeout -s INT 1 " + Ctl("stats --watch --interval 0.05 '" + file_ + "'"));
  size_t first = r.output.find("hits          7");
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hits          7", first + 1), std::string::npos) << r.output;
}

// affinityctl inspect on an ext4 image made with mke2fs, with a trace that
// reads one file, free space and (after the window) another file.
TEST(AffinityctlInspect, ListsTheFilesATraceReadWithinTheWindow) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "src/etc");
  std::ofstream(dir / "src/etc/hostname") << "guest-1\n";
  std::ofstream(dir / "src/late") << "read late\n";
  const std::string img = dir / "root.raw";
  CommandResult r = RunCommand("mke2fs -q -t ext4 -d " + (dir / "src") + " -b 4096 " + img + " 8M");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ctl = "'" + testing::BinaryPath("affinityctl") + "' inspect ";
  r = RunCommand(ctl + "--json " + img);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["container"], "raw");
  EXPECT_EQ(j["partition"], "whole-disk");
  EXPECT_EQ(j["filesystem"], "ext4");
  EXPECT_EQ(j["regular"], 2);

  // Where the files are, from debugfs: "(0):1234".
  auto block_of = [&](const std::string& path) {
    CommandResult s = RunCommand("debugfs -R 'bmap " + path + " 0' " + img);
    return std::stoull(s.output.substr(s.output.find_last_of('\n', s.output.size() - 2) + 1));
  };
  const uint64_t hostname = block_of("/etc/hostname") * 4096, late = block_of("/late") * 4096;
  std::ofstream(dir / "trace.csv") << "time_s,offset,length,op\n"
                                   << "0.5," << hostname << ",4096,R\n"
                                   << "0.7," << (6 << 20) << ",8192,R\n"
                                   << "4.0," << late << ",4096,R\n";
  r = RunCommand(ctl + "--json --window-s 3 --trace " + (dir / "trace.csv") + " " + img);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["traces"].size(), 1u) << r.output;
  const auto& t = j["traces"][0];
  EXPECT_EQ(t["reads"], 2);
  EXPECT_EQ(t["unattributed_bytes"], 8192);
  ASSERT_EQ(t["files"].size(), 1u) << r.output;
  EXPECT_EQ(t["files"][0]["path"], "/etc/hostname");
  EXPECT_EQ(t["files"][0]["bytes"], 4096);
  EXPECT_DOUBLE_EQ(t["files"][0]["first_read_s"].get<double>(), 0.5);

  r = RunCommand(ctl + "--trace " + (dir / "trace.csv") + " " + img);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("/late"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not in any file: 8192 bytes"), std::string::npos) << r.output;

  std::ofstream(dir / "zeros.img") << std::string(1 << 16, '\0');
  r = RunCommand(ctl + (dir / "zeros.img"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("not inspectable"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace affinity::ctl
