// Signatures end to end on synthetic guests: what one VM's starts teach, as
// paths, lands on the same files of another VM whose files sit elsewhere, and
// a VM with no history gets a plan from it.
#include "profile/signature_profile.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "profile/prefetch_plan.h"
#include "tests/profile/guest_map_builder.h"

namespace affinity::profile {
namespace {

using testing::DpkgStanza;
using testing::GuestMapBuilder;

const std::string kShipped = std::string(AFFINITY_SOURCE_DIR) + "/profile/signatures";

// A Debian-like guest with nginx. `filler` files come first, so each guest's
// nginx files get other blocks (like two images built with other packages).
GuestMapBuilder Guest(int filler) {
  GuestMapBuilder g;
  g.MergedUsr();
  for (int i = 0; i < filler; ++i) g.File("/usr/share/filler/f" + std::to_string(i), 200'000);
  g.File("/usr/lib/systemd/systemd", 100'000).File("/etc/fstab", 500);
  g.Content("/var/lib/dpkg/status", DpkgStanza("nginx-core", "install ok installed", "1.22.1-9"));
  g.Content("/var/lib/dpkg/info/nginx-core.list", "/.\n/usr\n/usr/sbin\n/usr/sbin/nginx\n");
  g.File("/usr/sbin/nginx", 1'200'000).File("/etc/nginx/nginx.conf", 3000).File("/srv/www/big.bin", 4'000'000);
  return g;
}

std::set<uint32_t> BlocksOf(const GuestFile& f) {
  std::set<uint32_t> out;
  for (const auto& e : f.extents) {
    for (uint64_t b = e.offset / kProfileBlockSize; b * kProfileBlockSize < e.offset + e.length; ++b) {
      out.insert(static_cast<uint32_t>(b));
    }
  }
  return out;
}

AccessRecord ReadAll(const GuestFile& f, uint64_t t_ms) {
  AccessRecord r;
  r.image = "root.raw";
  r.offset = f.extents.at(0).offset;
  r.length = f.extents.at(0).length;
  r.t_us = t_ms * 1000;
  return r;
}

TEST(SignatureProfileTest, WhatOneVmsStartsReadCarriesAsPathsToAnotherVmWithNoHistory) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  GuestMapBuilder a = Guest(0);
  GuestMapBuilder b = Guest(7);
  const GuestFileMap map_a = a.Build();
  const GuestFileMap map_b = b.Build();
  ASSERT_NE(a.Get("/usr/sbin/nginx").extents, b.Get("/usr/sbin/nginx").extents);

  // VM a: two starts read systemd, fstab, nginx and its config early, and
  // its own web data late.
  SessionTrace start;
  start.kind = SessionKind::kStart;
  start.records = {ReadAll(a.Get("/usr/lib/systemd/systemd"), 100), ReadAll(a.Get("/etc/fstab"), 200),
                   ReadAll(a.Get("/usr/sbin/nginx"), 15'000), ReadAll(a.Get("/etc/nginx/nginx.conf"), 15'100),
                   ReadAll(a.Get("/srv/www/big.bin"), 120'000)};
  const ImageSignatures learned_a =
      SignaturesForImage(db, "root.raw", map_a, a.Reader(), {start, start}, nullptr);
  auto app_of = [&](const std::string& path) {
    for (const auto& l : learned_a.learned) {
      if (l.path == path) return l.application + "/" + l.phase;
    }
    return std::string("none");
  };
  EXPECT_EQ(app_of("/usr/lib/systemd/systemd"), "linux-boot/boot");
  EXPECT_EQ(app_of("/etc/fstab"), "linux-boot/boot");
  EXPECT_EQ(app_of("/usr/sbin/nginx"), "nginx/service-start");
  EXPECT_EQ(app_of("/etc/nginx/nginx.conf"), "nginx/service-start");
  EXPECT_EQ(app_of("/srv/www/big.bin"), "none") << "the VM's own late data is not carried";

  // VM b has no history; what a taught is all it gets.
  const std::vector<LearnedPath> taught = learned_a.learned;
  const ImageSignatures sig_b = SignaturesForImage(
      db, "root.raw", map_b, b.Reader(), {}, [&](const std::set<std::string>& apps) {
        EXPECT_TRUE(apps.count("nginx") == 1 && apps.count("linux-boot") == 1);
        return taught;
      });
  EXPECT_EQ(sig_b.taught, taught.size());
  Profile p;
  p.vm = "vm-b";
  ApplySignatures(p, sig_b);
  ASSERT_EQ(p.images.size(), 1u);
  ASSERT_GE(p.signatures.size(), 2u);
  const auto nginx = std::find_if(p.signatures.begin(), p.signatures.end(),
                                  [](const SignatureMatch& m) { return m.application == "nginx"; });
  ASSERT_NE(nginx, p.signatures.end());
  EXPECT_NE(nginx->evidence.find("root.raw: dpkg: nginx-core 1.22.1-9 installed"), std::string::npos)
      << nginx->evidence;

  // Its restart plan fetches b's own blocks of those files, boot files first.
  const auto plan = BuildPrefetchPlan(p, PlanOptions{});
  auto cls_of = [&](uint32_t block) {
    for (const auto& item : plan) {
      if (item.block == block) return static_cast<int>(item.cls);
    }
    return -1;
  };
  for (uint32_t blk : BlocksOf(b.Get("/usr/lib/systemd/systemd"))) {
    EXPECT_EQ(cls_of(blk), static_cast<int>(PrefetchClass::kCritical)) << blk;
  }
  for (uint32_t blk : BlocksOf(b.Get("/usr/sbin/nginx"))) EXPECT_GE(cls_of(blk), 0) << blk;
  for (uint32_t blk : BlocksOf(b.Get("/srv/www/big.bin"))) EXPECT_EQ(cls_of(blk), -1) << blk;
}

TEST(SignatureProfileTest, WithHistoryThePriorsBlendInAndAnImageWithoutMatchesIsLeftAlone) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  GuestMapBuilder g = Guest(2);
  const GuestFileMap map = g.Build();
  Profile p;
  p.sessions = 4;
  const uint32_t history_block = 5;
  p.images.push_back(ImageProfile{"root.raw", {BlockProfile{history_block, 1.0f, 1.0f, 1.0f}}, {}});
  const ImageSignatures sig = SignaturesForImage(db, "root.raw", map, g.Reader(), {}, nullptr);
  ASSERT_FALSE(sig.priors.empty());
  ApplySignatures(p, sig);
  ASSERT_EQ(p.images.size(), 1u);
  const auto& blocks = p.images[0].blocks;
  EXPECT_TRUE(std::is_sorted(blocks.begin(), blocks.end(),
                             [](const BlockProfile& x, const BlockProfile& y) { return x.block < y.block; }));
  EXPECT_EQ(blocks.front().block, history_block);
  EXPECT_FLOAT_EQ(blocks.front().score, 1.0f) << "a block only history knows is unchanged";
  for (size_t i = 1; i < blocks.size(); ++i) EXPECT_LE(blocks[i].score, 0.2f) << "a prior is one session of five";

  // An image with nothing detectable (no Linux at all) gets nothing.
  GuestMapBuilder empty;
  empty.File("/data.bin", 100);
  const ImageSignatures none = SignaturesForImage(db, "data.raw", empty.Build(), empty.Reader(), {}, nullptr);
  EXPECT_TRUE(none.matches.empty());
  ApplySignatures(p, none);
  EXPECT_EQ(p.images.size(), 1u);
}

}  // namespace
}  // namespace affinity::profile
