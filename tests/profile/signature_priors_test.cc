// Block priors from detected applications, and blending them with history.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "profile/prefetch_plan.h"
#include "profile/signature_blend.h"
#include "profile/signature_priors.h"
#include "tests/profile/guest_map_builder.h"

namespace affinity::profile {
namespace {

using testing::GuestMapBuilder;
constexpr uint64_t kB = kProfileBlockSize;

GuestFile Entry(const std::string& path, GuestFileKind kind, uint64_t inode_block, std::vector<ImageExtent> extents,
                const std::string& target = "") {
  GuestFile f;
  f.path = path;
  f.kind = kind;
  f.link_target = target;
  f.inode = {inode_block * kB + 512, 256};
  f.extents = std::move(extents);
  for (const auto& e : f.extents) f.size += e.length;
  return f;
}

// A hand-made map: every block number below is chosen, so the test can name them.
GuestFileMap KnownMap() {
  GuestFileMap m;
  m.block_size = 4096;
  m.files = {
      Entry("/", GuestFileKind::kDirectory, 2, {{5 * kB, 4096}}),
      Entry("/usr", GuestFileKind::kDirectory, 2, {{6 * kB, 4096}}),
      Entry("/usr/sbin", GuestFileKind::kDirectory, 3, {{7 * kB + 4096, 4096}}),
      // 100 KiB from the middle of block 10: blocks 10, 11, 12.
      Entry("/usr/sbin/app", GuestFileKind::kRegular, 3, {{10 * kB + 32768, 102400}}),
      Entry("/usr/sbin/app-link", GuestFileKind::kSymlink, 4, {}, "app"),
      Entry("/usr/sbin/other", GuestFileKind::kRegular, 4, {{20 * kB, 4096}, {30 * kB, 4096}}),
      Entry("/etc", GuestFileKind::kDirectory, 8, {{40 * kB, 4096}}),
      Entry("/etc/app.conf", GuestFileKind::kRegular, 8, {{41 * kB, 4096}}),
      Entry("/var", GuestFileKind::kDirectory, 8, {{50 * kB, 4096}}),
      Entry("/var/big.db", GuestFileKind::kRegular, 9, {{1000 * kB, 200ull << 20}}),
      Entry("<superblock>", GuestFileKind::kMetadata, 0, {{1024, 1024}}),
      Entry("<group-descriptors>", GuestFileKind::kMetadata, 0, {{4096, 4096}}),
  };
  // Metadata has no inode.
  m.files[10].inode = {};
  m.files[11].inode = {};
  return m;
}

Signature Sig(const std::string& app, std::vector<SignatureNeed> needs) {
  Signature s;
  s.application = app;
  s.detect = {{DetectRule::Kind::kPath, "/"}};
  s.needs = std::move(needs);
  return s;
}

std::map<uint32_t, BlockPrior> ByBlock(const std::vector<BlockPrior>& v) {
  std::map<uint32_t, BlockPrior> out;
  for (const auto& p : v) EXPECT_TRUE(out.emplace(p.block, p).second) << "duplicate block " << p.block;
  return out;
}

std::vector<uint32_t> Blocks(const std::vector<BlockPrior>& v) {
  std::vector<uint32_t> out;
  for (const auto& p : v) out.push_back(p.block);
  return out;
}

TEST(SignaturePriors, ExactBlocksOfAFileItsInodeItsDirectoriesAndBootMetadata) {
  SignatureDb db;
  db.Put(Sig("app", {{SignaturePhase::kBoot, SignaturePriority::kCritical, {"/usr/sbin/app"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"app", "test"}};
  const GuestFileMap map = KnownMap();
  auto priors = BuildSignaturePriors(matches, db, {}, map, nullptr);
  // 0: superblock and group descriptors; 2, 3: inodes of /, /usr, /usr/sbin,
  // app; 5, 6, 7: directory blocks; 10..12: the data.
  EXPECT_EQ(Blocks(priors), (std::vector<uint32_t>{0, 2, 3, 5, 6, 7, 10, 11, 12}));
  for (const auto& p : priors) {
    EXPECT_FLOAT_EQ(p.score, kCriticalPriorScore);
    EXPECT_FLOAT_EQ(p.boot_support, kCriticalPriorScore);
    EXPECT_EQ(p.first_ms, 0u);
    EXPECT_EQ(p.application, 0u);
  }
}

TEST(SignaturePriors, SymlinksBringTheirTargetNonBootHasNoMetadataPhasesSetFirstRead) {
  SignatureDb db;
  db.Put(Sig("app", {{SignaturePhase::kServiceStart, SignaturePriority::kEarly, {"/usr/sbin/app-link"}, {}},
                     {SignaturePhase::kSteady, SignaturePriority::kBackground, {"/etc/*.conf"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"app", "test"}};
  const GuestFileMap map = KnownMap();
  auto by = ByBlock(BuildSignaturePriors(matches, db, {}, map, nullptr));
  EXPECT_EQ(by.count(0), 0u);  // no boot need: no metadata
  ASSERT_EQ(by.count(4), 1u);  // the link's inode
  ASSERT_EQ(by.count(10), 1u);  // its target's data
  EXPECT_FLOAT_EQ(by[10].score, kEarlyPriorScore);
  EXPECT_EQ(by[10].first_ms, kServiceStartMs);
  EXPECT_FLOAT_EQ(by[10].boot_support, 0);
  ASSERT_EQ(by.count(41), 1u);
  EXPECT_FLOAT_EQ(by[41].score, kBackgroundPriorScore);
  EXPECT_EQ(by[41].first_ms, kSteadyStartMs);
  EXPECT_EQ(by.count(40), 1u);  // /etc's directory block
  EXPECT_EQ(by.count(20), 0u);  // /usr/sbin/other is not named
}

TEST(SignaturePriors, DedupKeepsTheStrongestAndBootNeedsAreSpreadInOrder) {
  SignatureDb db;
  db.Put(Sig("a", {{SignaturePhase::kSteady, SignaturePriority::kBackground, {"/usr/sbin/**"}, {}}}));
  db.Put(Sig("b", {{SignaturePhase::kBoot, SignaturePriority::kCritical, {"/etc/app.conf"}, {}},
                   {SignaturePhase::kBoot, SignaturePriority::kEarly, {"/usr/sbin/other"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"a", ""}, {"b", ""}};
  const GuestFileMap map = KnownMap();
  auto by = ByBlock(BuildSignaturePriors(matches, db, {}, map, nullptr));
  // /usr/sbin/other: named by a (background) and b (early, boot): b wins.
  ASSERT_EQ(by.count(20), 1u);
  EXPECT_FLOAT_EQ(by[20].score, kEarlyPriorScore);
  EXPECT_EQ(by[20].application, 1u);
  EXPECT_EQ(by[20].first_ms, kBootSpreadMs / 2);  // second of two boot items
  EXPECT_FLOAT_EQ(by[20].boot_support, kEarlyPriorScore);
  EXPECT_EQ(by[41].first_ms, 0u);  // first boot item
  // /usr/sbin/app only by a.
  EXPECT_FLOAT_EQ(by[10].score, kBackgroundPriorScore);
  EXPECT_EQ(by[10].application, 0u);
  // "/" is a parent of everything: the critical boot need's score.
  EXPECT_FLOAT_EQ(by[5].score, kCriticalPriorScore);
}

TEST(SignaturePriors, ABigFileContributesOnlyItsHead) {
  SignatureDb db;
  db.Put(Sig("db", {{SignaturePhase::kServiceStart, SignaturePriority::kCritical, {"/var/big.db"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"db", ""}};
  const GuestFileMap map = KnownMap();
  auto priors = BuildSignaturePriors(matches, db, {}, map, nullptr);
  size_t data = 0;
  uint32_t last = 0;
  for (const auto& p : priors) {
    if (p.block >= 1000) {
      ++data;
      last = p.block;
    }
  }
  EXPECT_EQ(data, kMaxPriorBytesPerFile / kB);
  EXPECT_EQ(last, 1000 + kMaxPriorBytesPerFile / kB - 1);
}

TEST(SignaturePriors, PackagesExpandToTheirFilesButNotTheirDocumentation) {
  GuestMapBuilder b;
  b.File("/usr/bin/tool").File("/usr/share/doc/tool/changelog.gz").File("/etc/tool.conf");
  b.Content("/var/lib/dpkg/info/tool:amd64.list",
            "/.\n/usr\n/usr/bin\n/usr/bin/tool\n/usr/share/doc/tool/changelog.gz\n/etc/tool.conf\n/gone\n");
  const GuestFileMap map = b.Build();
  GuestFile tool = b.Get("/usr/bin/tool");
  GuestFile doc = b.Get("/usr/share/doc/tool/changelog.gz");
  GuestFile conf = b.Get("/etc/tool.conf");
  SignatureDb db;
  db.Put(Sig("tool", {{SignaturePhase::kSteady, SignaturePriority::kEarly, {}, {"too[l]"}}}));
  const std::vector<SignatureMatch> matches = {{"tool", ""}};
  auto by = ByBlock(BuildSignaturePriors(matches, db, {}, map, b.Reader()));
  auto data_block = [](const GuestFile& f) { return static_cast<uint32_t>(f.extents.at(0).offset / kB); };
  EXPECT_EQ(by.count(data_block(tool)), 1u);
  EXPECT_EQ(by.count(data_block(conf)), 1u);
  EXPECT_EQ(by.count(data_block(doc)), 0u);
  EXPECT_FLOAT_EQ(by[data_block(tool)].score, kEarlyPriorScore);
}

TEST(SignaturePriors, LearnedPathsReplaceTheGuessForTheirFile) {
  SignatureDb db;
  db.Put(Sig("app", {{SignaturePhase::kServiceStart, SignaturePriority::kCritical, {"/usr/sbin/*"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"app", ""}};
  const std::vector<LearnedPath> learned = {
      {"app", "/usr/sbin/other", "boot", 0.3f, 1234},
      {"app", "/etc/app.conf", "steady", 0.999f, 90'000},
      {"app", "/var/big.db", "bogus-phase", 1.0f, 0},    // ignored
      {"not-detected", "/var/big.db", "boot", 1.0f, 0},  // ignored
  };
  const GuestFileMap map = KnownMap();
  auto by = ByBlock(BuildSignaturePriors(matches, db, learned, map, nullptr));
  ASSERT_EQ(by.count(30), 1u);  // /usr/sbin/other's second extent
  EXPECT_FLOAT_EQ(by[30].score, 0.3f);
  EXPECT_EQ(by[30].first_ms, 1234u);
  EXPECT_FLOAT_EQ(by[30].boot_support, 0.3f);
  EXPECT_FLOAT_EQ(by[41].score, kMaxLearnedScore);  // clamped
  EXPECT_EQ(by[41].first_ms, 90'000u);
  EXPECT_FLOAT_EQ(by[41].boot_support, 0);
  EXPECT_FLOAT_EQ(by[10].score, kCriticalPriorScore);  // app: still the signature's
  EXPECT_EQ(by.count(1000), 0u);
}

TEST(SignaturePriors, ALearnedPathWithRangesAddsOnlyThoseBytesOfItsFile) {
  SignatureDb db;
  db.Put(Sig("app", {{SignaturePhase::kSteady, SignaturePriority::kBackground, {"/nothing"}, {}}}));
  const std::vector<SignatureMatch> matches = {{"app", ""}};
  // /usr/sbin/other's data: 4 KiB at block 20, then 4 KiB at block 30;
  // /var/big.db's: 200 MiB from block 1000.
  const std::vector<LearnedPath> learned = {
      {"app", "/usr/sbin/other", "boot", 1.0f, 5, {{4096, 100}}},
      {"app", "/var/big.db", "steady", 1.0f, 5, {{0, 10}, {(3 * kB) + 5, 70'000}}},
  };
  const GuestFileMap map = KnownMap();
  auto by = ByBlock(BuildSignaturePriors(matches, db, learned, map, nullptr));
  EXPECT_EQ(by.count(30), 1u) << "the second extent holds data offset 4096";
  EXPECT_EQ(by.count(20), 0u);
  for (uint32_t b : {1000u, 1003u, 1004u}) EXPECT_EQ(by.count(b), 1u) << b;
  for (uint32_t b : {1001u, 1002u, 1005u, 1100u}) EXPECT_EQ(by.count(b), 0u) << b;
}

TEST(SignaturePriors, ShippedLinuxBootOnAGuestWithNoHistoryPrefetchesItsInitFirst) {
  GuestMapBuilder b;
  b.MergedUsr()
      .File("/usr/lib/systemd/systemd", 100'000)
      .Link("/usr/sbin/init", "../lib/systemd/systemd")
      .File("/boot/vmlinuz-6.1.0-13-amd64", 8 << 20)
      .File("/boot/grub/grub.cfg")
      .File("/etc/fstab")
      .File("/usr/share/doc/readme")
      .Metadata("<superblock>", {1024, 1024});
  const GuestFileMap map = b.Build();
  const SignatureDb db = SignatureDb::Load({AFFINITY_SOURCE_DIR "/profile/signatures"});
  ASSERT_TRUE(db.errors().empty());
  const std::vector<SignatureMatch> matches = DetectApplications(db, map, b.Reader());
  ASSERT_EQ(matches.size(), 2u);
  EXPECT_EQ(matches[0].application, "disk-boot");  // a bootloader: the kernel is read from the disk
  EXPECT_EQ(matches[1].application, "linux-boot");
  const auto priors = BuildSignaturePriors(matches, db, {}, map, b.Reader());

  Profile profile;
  profile.images.push_back({"root.raw", {}, {}});
  BlendSignaturePriors(profile.images[0], priors, 0);
  std::map<uint32_t, PrefetchClass> cls;
  for (const PlanItem& item : BuildPrefetchPlan(profile, PlanOptions{.arrival = Arrival::kRestart})) {
    cls[item.block] = item.cls;
  }
  auto first_block = [&](const std::string& path) {
    return static_cast<uint32_t>(b.Get(path).extents.at(0).offset / kB);
  };
  EXPECT_EQ(cls.at(0), PrefetchClass::kCritical);  // the superblock
  EXPECT_EQ(cls.at(first_block("/usr/lib/systemd/systemd")), PrefetchClass::kCritical);
  EXPECT_EQ(cls.at(first_block("/boot/vmlinuz-6.1.0-13-amd64")), PrefetchClass::kCritical);
  EXPECT_EQ(cls.at(first_block("/etc/fstab")), PrefetchClass::kCritical);
  EXPECT_EQ(cls.at(first_block("/usr/lib")), PrefetchClass::kCritical);  // a directory on the way
  EXPECT_EQ(cls.count(first_block("/usr/share/doc/readme")), 0u);
}

// ---- blending ----

BlockProfile Hist(uint32_t block, float score, float boot, uint32_t first_ms) {
  BlockProfile b;
  b.block = block;
  b.score = b.support = score;
  b.boot_support = boot;
  b.first_ms = first_ms;
  b.decayed_reads = 1;
  return b;
}

TEST(SignatureBlend, WithoutHistoryBootPriorsAreTheCriticalClassOfARestart) {
  Profile profile;
  profile.images.push_back({"root.raw", {}, {}});
  const std::vector<BlockPrior> priors = {
      {7, kCriticalPriorScore, 0, kCriticalPriorScore, 0},       // boot critical
      {3, kCriticalPriorScore, 15'000, kCriticalPriorScore, 0},  // boot critical, later
      {9, kEarlyPriorScore, kServiceStartMs, 0, 0},              // service start
  };
  BlendSignaturePriors(profile.images[0], priors, 0);
  ASSERT_EQ(profile.images[0].blocks.size(), 3u);
  EXPECT_FLOAT_EQ(profile.images[0].blocks[0].score, kCriticalPriorScore);  // the prior itself
  EXPECT_EQ(profile.images[0].blocks[0].live_last_ms, -1);
  auto plan = BuildPrefetchPlan(profile, PlanOptions{.arrival = Arrival::kRestart});
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].block, 7u);
  EXPECT_EQ(plan[0].cls, PrefetchClass::kCritical);
  EXPECT_EQ(plan[1].block, 3u);
  EXPECT_EQ(plan[1].cls, PrefetchClass::kCritical);
  EXPECT_EQ(plan[2].block, 9u);
  EXPECT_EQ(plan[2].cls, PrefetchClass::kEarly);
}

TEST(SignatureBlend, WithHistoryHistoryDominates) {
  ImageProfile image{"root.raw", {Hist(1, 1.0f, 1.0f, 100), Hist(5, 0.0f, 0.0f, 70'000), Hist(8, 0.5f, 0.f, 500)},
                     {}};
  const std::vector<BlockPrior> priors = {
      {5, kCriticalPriorScore, 0, kCriticalPriorScore, 0},  // history says: not at boot
      {6, kCriticalPriorScore, 0, kCriticalPriorScore, 0},  // history never read it
      {1, kBackgroundPriorScore, 60'000, 0, 0},
  };
  BlendSignaturePriors(image, priors, 4);
  ASSERT_EQ(image.blocks.size(), 4u);
  EXPECT_NEAR(image.blocks[0].score, (4 * 1.0 + 0.2) / 5, 1e-6);
  EXPECT_NEAR(image.blocks[0].boot_support, 4.0 / 5, 1e-6);
  EXPECT_EQ(image.blocks[0].first_ms, 100u);  // history's
  EXPECT_NEAR(image.blocks[1].score, 0.9 / 5, 1e-6);
  EXPECT_NEAR(image.blocks[1].boot_support, 0.9 / 5, 1e-6);
  EXPECT_EQ(image.blocks[1].first_ms, 70'000u);
  EXPECT_EQ(image.blocks[2].block, 6u);  // inserted in order
  EXPECT_NEAR(image.blocks[2].score, 0.9 / 5, 1e-6);
  EXPECT_FLOAT_EQ(image.blocks[2].support, 0);
  EXPECT_EQ(image.blocks[3], Hist(8, 0.5f, 0.f, 500));  // no prior: unchanged

  Profile profile;
  profile.images.push_back(image);
  for (const PlanItem& item : BuildPrefetchPlan(profile, PlanOptions{.arrival = Arrival::kRestart})) {
    if (item.block != 1) {
      EXPECT_NE(item.cls, PrefetchClass::kCritical) << item.block;
    }
  }
}

TEST(SignatureBlend, KeepsBlocksSortedAndUniqueAndTheStrongestPrior) {
  std::mt19937 rng(42);
  ImageProfile image;
  for (uint32_t b = 0; b < 2000; b += 3) image.blocks.push_back(Hist(b, 0.5f, 0.f, b));
  std::vector<BlockPrior> priors;
  for (int i = 0; i < 3000; ++i) {
    const auto block = static_cast<uint32_t>(rng() % 2500);
    priors.push_back({block, static_cast<float>(rng() % 90) / 100, 0, 0, 0});
  }
  priors.push_back({2600, 0.2f, 0, 0, 0});
  priors.push_back({2600, 0.8f, 7, 0, 0});
  priors.push_back({2600, 0.8f, 9, 0, 0});
  BlendSignaturePriors(image, priors, 2);
  for (size_t i = 1; i < image.blocks.size(); ++i) ASSERT_LT(image.blocks[i - 1].block, image.blocks[i].block);
  const BlockProfile& last = image.blocks.back();
  EXPECT_EQ(last.block, 2600u);
  EXPECT_NEAR(last.score, 0.8 / 3, 1e-6);
  EXPECT_EQ(last.first_ms, 7u);
}

}  // namespace
}  // namespace affinity::profile
