// LearnedSignatures: what VMs' histories taught, kept per VM and aggregated
// for the others, in a real SQLite file.
#include "storage/learned_signatures.h"

#include <gtest/gtest.h>

#include "tests/support/test_env.h"

namespace affinity::storage {
namespace {

using profile::LearnedPath;

const LearnedPath* Find(const std::vector<LearnedPath>& all, const std::string& app, const std::string& path) {
  for (const auto& l : all) {
    if (l.application == app && l.path == path) return &l;
  }
  return nullptr;
}

TEST(LearnedSignaturesTest, OtherVmsTeachAPathInProportionToHowManyOfThemReadIt) {
  testing::TempDir dir;
  auto store = LearnedSignatures::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Replace("vm-a", "root.raw",
                                {{"nginx", "/usr/sbin/nginx", "service-start", 1.0f, 20'000},
                                 {"nginx", "/etc/nginx/nginx.conf", "service-start", 1.0f, 19'000},
                                 {"linux-boot", "/sbin/init", "boot", 1.0f, 1'000}},
                                1)
                  .ok());
  ASSERT_TRUE((*store)->Replace("vm-b", "root.raw", {{"nginx", "/usr/sbin/nginx", "steady", 0.5f, 40'000}}, 2).ok());

  auto learned = (*store)->Aggregate({"nginx"}, "vm-new");
  ASSERT_TRUE(learned.ok()) << learned.status().ToString();
  ASSERT_EQ(learned->size(), 2u);  // linux-boot was not asked for
  const LearnedPath* daemon = Find(*learned, "nginx", "/usr/sbin/nginx");
  ASSERT_NE(daemon, nullptr);
  EXPECT_NEAR(daemon->support, 0.75, 1e-4);  // (1.0 + 0.5) / 2 VMs
  EXPECT_EQ(daemon->first_ms, 30'000u);
  EXPECT_EQ(daemon->phase, "service-start");  // the earliest phase any VM saw
  const LearnedPath* conf = Find(*learned, "nginx", "/etc/nginx/nginx.conf");
  ASSERT_NE(conf, nullptr);
  EXPECT_NEAR(conf->support, 0.5, 1e-4);  // one of the two VMs that know nginx
}

TEST(LearnedSignaturesTest, WhatVmsReadOfAFileIsJoinedAndOneThatReadAllOfItMakesItWhole) {
  testing::TempDir dir;
  auto store = LearnedSignatures::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Replace("vm-a", "root.raw", {{"pg", "/icu.dat", "boot", 1, 5, {{0, 4096}, {65536, 100}}},
                                                      {"pg", "/lib.so", "boot", 1, 5, {{0, 10}}}}, 1).ok());
  ASSERT_TRUE((*store)->Replace("vm-b", "root.raw", {{"pg", "/icu.dat", "boot", 1, 5, {{8192, 4096}}},
                                                      {"pg", "/lib.so", "boot", 1, 5, {}}}, 1).ok());
  auto learned = (*store)->Aggregate({"pg"}, "vm-c");
  ASSERT_TRUE(learned.ok());
  const LearnedPath* icu = Find(*learned, "pg", "/icu.dat");
  ASSERT_NE(icu, nullptr);
  EXPECT_EQ(icu->ranges, (std::vector<profile::FileRange>{{0, 4096}, {8192, 4096}, {65536, 100}}));
  const LearnedPath* lib = Find(*learned, "pg", "/lib.so");
  ASSERT_NE(lib, nullptr);
  EXPECT_TRUE(lib->ranges.empty()) << "vm-b read all of it";
}

TEST(LearnedSignaturesTest, AVmDoesNotTeachItselfAndANewHistoryReplacesTheOld) {
  testing::TempDir dir;
  auto store = LearnedSignatures::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Replace("vm-a", "root.raw", {{"redis", "/usr/bin/redis-server", "steady", 1.0f, 5}}, 1).ok());
  auto self = (*store)->Aggregate({"redis"}, "vm-a");
  ASSERT_TRUE(self.ok());
  EXPECT_TRUE(self->empty());

  ASSERT_TRUE((*store)->Replace("vm-a", "root.raw", {{"redis", "/etc/redis/redis.conf", "boot", 0.8f, 7}}, 2).ok());
  auto other = (*store)->Aggregate({"redis"}, "vm-b");
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].path, "/etc/redis/redis.conf");
}

TEST(LearnedSignaturesTest, WhatWasLearnedSurvivesARestart) {
  testing::TempDir dir;
  {
    auto store = LearnedSignatures::Open(dir.path());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Replace("vm-a", "root.raw", {{"postgresql", "/usr/lib/postgresql/15/bin/postgres",
                                                         "service-start", 1.0f, 9}},
                                  1)
                    .ok());
  }
  auto reopened = LearnedSignatures::Open(dir.path());
  ASSERT_TRUE(reopened.ok());
  auto learned = (*reopened)->Aggregate({"postgresql"}, "");
  ASSERT_TRUE(learned.ok());
  ASSERT_EQ(learned->size(), 1u);
}

}  // namespace
}  // namespace affinity::storage
