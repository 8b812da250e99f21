// The profile model, its format, the plan and the cost/benefit policy.
#include <gtest/gtest.h>

#include <random>

#include "profile/prefetch_plan.h"
#include "profile/prefetch_policy.h"
#include "profile/profile_builder.h"
#include "profile/profile_codec.h"

namespace affinity::profile {
namespace {

constexpr int64_t kHour = 3'600'000;
constexpr int64_t kDay = 24 * kHour;
constexpr uint64_t kB = kProfileBlockSize;
// A Wednesday, 00:00 UTC (2026-11-25).
constexpr int64_t kWednesday = 1795564800000;

SessionTrace Session(const std::string& id, int64_t start_ms, std::vector<std::pair<uint64_t, uint64_t>> reads,
                     SessionKind kind = SessionKind::kStart) {
  SessionTrace s{id, start_ms, kind, "h", start_ms, {}};
  for (auto [block, t_ms] : reads) {
    s.records.push_back({s.records.size(), "root.raw", block * kB, 4096, AccessOp::kRead, t_ms * 1000});
  }
  return s;
}

const BlockProfile* Find(const Profile& p, uint32_t block) {
  for (const auto& b : p.images.at(0).blocks) {
    if (b.block == block) return &b;
  }
  return nullptr;
}

TEST(ProfileBuilder, SupportFirstReadBootShareAndSuccessors) {
  const int64_t now = kWednesday + 12 * kHour;
  // Three starts at the same hour: block 1 then 2 in all, 3 in one, 9 late.
  std::vector<SessionTrace> s = {
      Session("s-a", now - 3 * kHour, {{1, 100}, {2, 150}, {9, 90'000}}),
      Session("s-b", now - 2 * kHour, {{1, 120}, {2, 130}, {3, 140}}),
      Session("s-c", now - 1 * kHour, {{1, 80}, {2, 400}, {1, 500}}),
  };
  BuildOptions o{.now_ms = now, .target_ms = now, .half_life_days = 0};
  Profile p = BuildProfile("vm-1", s, o);
  ASSERT_EQ(p.images.size(), 1u);
  EXPECT_EQ(p.sessions, 3u);
  EXPECT_EQ(p.boot_sessions, 3u);
  const BlockProfile* b1 = Find(p, 1);
  const BlockProfile* b3 = Find(p, 3);
  const BlockProfile* b9 = Find(p, 9);
  ASSERT_TRUE(b1 && b3 && b9);
  EXPECT_NEAR(b1->support, 1.0, 1e-6);
  EXPECT_LT(b3->support, 0.5);
  EXPECT_GT(b3->support, 0.2);
  EXPECT_EQ(b1->first_ms, 100u);  // median of 80, 100, 120
  EXPECT_NEAR(b1->boot_support, 1.0, 1e-6);
  EXPECT_NEAR(b9->boot_support, 0.0, 1e-6);  // after the 60 s boot window
  EXPECT_NEAR(b1->decayed_reads, 4.0 / 3, 1e-3);
  // 1 -> 2 in every session, within the successor window.
  ASSERT_FALSE(p.images[0].successors.empty());
  EXPECT_EQ(p.images[0].successors[0], (SuccessorEdge{1, 2, 3}));
  for (const auto& e : p.images[0].successors) EXPECT_NE(e.to, 9u) << "9 came 90 s later: not a successor";
}

TEST(ProfileBuilder, SuccessorsArePrunedToTopK) {
  std::vector<std::pair<uint64_t, uint64_t>> reads = {{100, 0}};
  for (uint64_t b = 1; b <= 10; ++b) reads.push_back({100 + b, b});
  BuildOptions o{.now_ms = kWednesday, .successor_top_k = 2, .successor_lookback = 16};
  Profile p = BuildProfile("vm-1", {Session("s-a", kWednesday, reads)}, o);
  size_t from_100 = 0;
  for (const auto& e : p.images[0].successors) from_100 += e.from == 100;
  EXPECT_EQ(from_100, 2u);
}

TEST(ProfileBuilder, ATwoInTheMorningMigrationLeansOnTheNightSessions) {
  std::vector<SessionTrace> s;
  for (int d = 1; d <= 4; ++d) {
    s.push_back(Session("s-day" + std::to_string(d), kWednesday - d * kDay + 14 * kHour, {{10, 0}, {11, 1}}));
    s.push_back(Session("s-night" + std::to_string(d), kWednesday - d * kDay + 2 * kHour, {{20, 0}, {21, 1}}));
  }
  auto score = [&](int64_t target, uint32_t block) {
    BuildOptions o{.now_ms = kWednesday + 20 * kHour, .target_ms = target};
    return Find(BuildProfile("vm-1", s, o), block)->score;
  };
  EXPECT_GT(score(kWednesday + 2 * kHour, 20), score(kWednesday + 2 * kHour, 10));
  EXPECT_GT(score(kWednesday + 14 * kHour, 10), score(kWednesday + 14 * kHour, 20));
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday});
  EXPECT_EQ(p.hour_histogram[2], 8u);
  EXPECT_EQ(p.hour_histogram[14], 8u);
  EXPECT_EQ(Find(p, 20)->hours, 1u << 2);
}

TEST(ProfileBuilder, OldSessionsCountLess) {
  const int64_t now = kWednesday;
  std::vector<SessionTrace> s = {Session("s-old", now - 60 * kDay, {{1, 0}}), Session("s-new", now - kHour, {{2, 0}})};
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = now, .target_ms = now - kHour, .half_life_days = 7});
  EXPECT_GT(Find(p, 2)->support, 10 * Find(p, 1)->support);
}

TEST(ProfileBuilder, TheLiveSessionIsNotHistory) {
  std::vector<SessionTrace> s = {Session("s-past", kWednesday - kDay, {{1, 0}, {2, 50'000}}),
                                 Session("s-live", kWednesday - kHour, {{1, 0}, {5, 40'000}})};
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday, .live_session = "s-live"});
  EXPECT_EQ(p.sessions, 1u);
  EXPECT_EQ(p.live_elapsed_ms, 40'000u);
  EXPECT_EQ(Find(p, 5)->live_last_ms, 40'000);
  EXPECT_EQ(Find(p, 5)->support, 0.f);
  EXPECT_EQ(Find(p, 2)->live_last_ms, -1);
}

Profile Sample() {
  std::vector<SessionTrace> s;
  std::mt19937_64 rng(7);
  for (int k = 0; k < 5; ++k) {
    std::vector<std::pair<uint64_t, uint64_t>> reads;
    for (int i = 0; i < 300; ++i) reads.push_back({rng() % 5000, static_cast<uint64_t>(i * 37)});
    s.push_back(Session("s-" + std::to_string(k), kWednesday - k * kHour, reads));
  }
  return BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday});
}

TEST(ProfileCodec, RoundTripsWithinQuantization) {
  Profile p = Sample();
  p.signatures.push_back({"postgresql", "/var/lib/dpkg/status lists postgresql-15"});
  const std::string bytes = EncodeProfile(p);
  auto d = DecodeProfile(bytes);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->vm, p.vm);
  EXPECT_EQ(d->signatures, p.signatures);
  EXPECT_EQ(d->hour_histogram, p.hour_histogram);
  ASSERT_EQ(d->images.size(), 1u);
  ASSERT_EQ(d->images[0].blocks.size(), p.images[0].blocks.size());
  for (size_t i = 0; i < p.images[0].blocks.size(); ++i) {
    const auto &a = p.images[0].blocks[i], &b = d->images[0].blocks[i];
    EXPECT_EQ(a.block, b.block);
    EXPECT_NEAR(a.score, b.score, 1e-4);
    EXPECT_NEAR(a.boot_support, b.boot_support, 1e-4);
    EXPECT_EQ(a.first_ms, b.first_ms);
    EXPECT_EQ(a.hours, b.hours);
    EXPECT_EQ(a.live_last_ms, b.live_last_ms);
  }
  EXPECT_EQ(d->images[0].successors, p.images[0].successors);
  EXPECT_EQ(EncodeProfile(*d), EncodeProfile(*DecodeProfile(EncodeProfile(*d))));  // stable after one trip
}

TEST(ProfileCodec, RejectsDamagedForgedAndHostileInput) {
  const std::string good = EncodeProfile(Sample());
  std::string flipped = good;
  flipped[flipped.size() - 5] ^= 0x40;  // inside the zstd bytes
  EXPECT_EQ(DecodeProfile(flipped).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeProfile(good.substr(0, good.size() / 2)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeProfile("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeProfile("{\"json\": true}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeProfile(std::string(kMaxEncodedProfileBytes + 1, 'x')).status().code(),
            StatusCode::kInvalidArgument);
  // Blocks out of order are refused, not silently reordered.
  Profile p = Sample();
  std::swap(p.images[0].blocks[0], p.images[0].blocks[1]);
  auto bad = DecodeProfile(EncodeProfile(p));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("block"), std::string::npos) << bad.status().ToString();
  // An image name that could escape the cache directory.
  p = Sample();
  p.images[0].name = "../etc";
  EXPECT_EQ(DecodeProfile(EncodeProfile(p)).status().code(), StatusCode::kInvalidArgument);
}

// SPEC target: <= 1 MiB for a 100 GiB image with a boot + service working set.
// 8,000 blocks of 64 KiB (500 MiB read per session, spread over 100 GiB),
// 8 sessions, successors: the size is printed and bounded.
TEST(ProfileCodec, AWorkingSetOf500MiBOnA100GiBImageFitsInOneMiB) {
  std::mt19937_64 rng(42);
  const uint64_t blocks = (100ull << 30) / kB;
  std::vector<uint64_t> set(8000);
  for (auto& b : set) b = rng() % blocks;
  std::vector<SessionTrace> s;
  for (int k = 0; k < 8; ++k) {
    std::vector<std::pair<uint64_t, uint64_t>> reads;
    uint64_t t = 0;
    for (uint64_t b : set) {
      if (rng() % 10 == 0) continue;
      t += rng() % 20;
      reads.push_back({b, t});
    }
    s.push_back(Session("s-" + std::to_string(k), kWednesday - k * kDay, reads));
  }
  const std::string bytes = EncodeProfile(BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday}));
  std::printf("profile of 8000 blocks, 8 sessions: %zu bytes\n", bytes.size());
  EXPECT_LE(bytes.size(), 1u << 20);
}

TEST(PrefetchPlan, RestartPutsBootBlocksFirstInFirstReadOrder) {
  std::vector<SessionTrace> s = {
      Session("s-a", kWednesday - 2 * kHour, {{5, 300}, {7, 100}, {9, 120'000}}),
      Session("s-b", kWednesday - kHour, {{5, 320}, {7, 90}, {9, 110'000}, {11, 200}}),
      Session("s-c", kWednesday - 3 * kHour, {{5, 310}, {7, 95}, {9, 100'000}}),
  };
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday});
  auto plan = BuildPrefetchPlan(p, PlanOptions{});
  ASSERT_GE(plan.size(), 3u);
  EXPECT_EQ(plan[0].block, 7u);
  EXPECT_EQ(plan[0].cls, PrefetchClass::kCritical);
  EXPECT_EQ(plan[1].block, 5u);
  EXPECT_EQ(plan[1].cls, PrefetchClass::kCritical);
  bool saw9 = false;
  for (const auto& i : plan) {
    if (i.block == 9) {
      saw9 = true;
      EXPECT_EQ(i.cls, PrefetchClass::kEarly);  // read every time, but after boot
    }
    if (i.block == 11) {
      EXPECT_EQ(i.cls, PrefetchClass::kEarly);  // in the boot window of only a third of the starts
    }
  }
  EXPECT_TRUE(saw9);
}

TEST(PrefetchPlan, ALiveArrivalFetchesWhatComesAfterTheCutOverFirst) {
  std::vector<SessionTrace> s = {
      Session("s-a", kWednesday - 2 * kHour, {{1, 1'000}, {2, 40'000}, {3, 35'000}, {4, 90'000}}),
      Session("s-b", kWednesday - kHour, {{1, 1'000}, {2, 41'000}, {3, 36'000}, {4, 95'000}}),
      Session("s-live", kWednesday - 60'000, {{1, 1'000}, {2, 30'000}}),
  };
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday, .live_session = "s-live"});
  auto plan = BuildPrefetchPlan(p, PlanOptions{.arrival = Arrival::kLiveMigration});
  ASSERT_GE(plan.size(), 3u);
  EXPECT_EQ(plan[0].block, 3u);  // due 5.5 s after the 30 s cut-over: critical
  EXPECT_EQ(plan[0].cls, PrefetchClass::kCritical);
  bool saw4 = false;
  for (const auto& i : plan) {
    if (i.block == 4) {
      saw4 = true;
      EXPECT_EQ(i.cls, PrefetchClass::kEarly);  // due in a minute
      EXPECT_GE(i.due_ms, 60'000);  // first read at 90 or 95 s (weighted median), minus the 30 s run
      EXPECT_LE(i.due_ms, 65'000);
    }
    if (i.block == 1 || i.block == 2) {
      EXPECT_LT(i.probability, 0.7f) << "the guest already read it";
    }
  }
  EXPECT_TRUE(saw4);
}

TEST(PrefetchPlan, BackgroundOnlyWhenAsked) {
  std::vector<SessionTrace> s;
  for (int k = 0; k < 40; ++k) s.push_back(Session("s-" + std::to_string(k), kWednesday - k * kHour, {{1, 0}}));
  s.push_back(Session("s-rare", kWednesday, {{1, 0}, {99, 10}}));
  Profile p = BuildProfile("vm-1", s, BuildOptions{.now_ms = kWednesday});
  auto has99 = [](const std::vector<PlanItem>& plan) {
    for (const auto& i : plan) {
      if (i.block == 99) return i.cls == PrefetchClass::kBackground;
    }
    return false;
  };
  EXPECT_FALSE(has99(BuildPrefetchPlan(p, PlanOptions{})));
  EXPECT_TRUE(has99(BuildPrefetchPlan(p, PlanOptions{.background = true})));
}

TEST(PrefetchPolicy, CostBenefitDependsOnTheLinkAndTheCache) {
  PrefetchPolicy policy(PolicyOptions{});
  policy.SetLink({0.5, 125'000});
  const double fast_rtt = policy.Threshold(1 << 20);
  policy.SetLink({10, 125'000});
  const double slow_rtt = policy.Threshold(1 << 20);
  EXPECT_LT(slow_rtt, fast_rtt) << "a long round trip makes a miss dearer: prefetch deeper";
  policy.SetDemandBusy(1.0);
  EXPECT_GT(policy.Threshold(1 << 20), slow_rtt) << "a busy link makes waste dearer";
  const double unlimited = policy.Threshold(1 << 20);
  policy.SetCacheFree(2 << 20);
  EXPECT_GT(policy.Threshold(1 << 20), unlimited) << "an almost full cache makes waste dearer";
}

TEST(PrefetchPolicy, AClassThatKeepsMissingStops) {
  PrefetchPolicy policy(PolicyOptions{.min_samples = 20, .stop_accuracy = 0.1});
  EXPECT_TRUE(policy.Worth(PrefetchClass::kEarly, 0.9, 65536));
  for (int i = 0; i < 20; ++i) policy.OnMatured(PrefetchClass::kEarly, 0.9, /*used=*/false);
  EXPECT_TRUE(policy.Stopped(PrefetchClass::kEarly));
  EXPECT_FALSE(policy.Worth(PrefetchClass::kEarly, 0.9, 65536));
  EXPECT_TRUE(policy.Worth(PrefetchClass::kCritical, 0.9, 65536)) << "other classes keep going";
  // A class that delivers what it promised is trusted more.
  for (int i = 0; i < 20; ++i) policy.OnMatured(PrefetchClass::kCritical, 0.5, true);
  EXPECT_GT(policy.Calibration(PrefetchClass::kCritical), 1.5);
}

TEST(PrefetchPolicy, WindowGrowsWhenLateAndHalvesUnderDemand) {
  PrefetchPolicy policy(PolicyOptions{.initial_window = 4, .max_window = 6});
  policy.OnLateDemandMiss();
  policy.OnLateDemandMiss();
  policy.OnLateDemandMiss();
  EXPECT_EQ(policy.window(), 6u);
  policy.OnDemandMissRunning();
  EXPECT_EQ(policy.window(), 3u);
  for (int i = 0; i < 5; ++i) policy.OnDemandMissRunning();
  EXPECT_EQ(policy.window(), 1u);
}

}  // namespace
}  // namespace affinity::profile
