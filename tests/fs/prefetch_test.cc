// The prefetch engine end to end: a first run's reads reach the storage
// host's profiler; a second mount (an empty cache, as on a destination)
// gets the profile from the storage host and prefetches those blocks before
// the VM asks, and its reads of them are cache hits. A profile that cannot be
// used leaves the mount serving on demand. Real daemons, real TLS, real FUSE.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "profile/access_batch.h"
#include "profile/profile_codec.h"
#include "tests/fs/read_path_fixture.h"
#include "tests/support/curl_test_client.h"

namespace affinity::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Ratio(uint64_t num, uint64_t den) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", static_cast<double>(num) / static_cast<double>(den));
  return buf;
}

void WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

class PrefetchTest : public ReadPathTest {
 protected:
  bool WaitForXattr(const std::string& name, const std::string& value) {
    auto until = Clock::now() + std::chrono::seconds(15);
    while (Xattr(mnt_, name) != value && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return Xattr(mnt_, name) == value;
  }

  uint64_t Num(const std::string& path, const std::string& name) { return std::stoull(Xattr(path, name)); }

  // Offsets spread over data.raw, far apart (no read-ahead can cover them).
  const std::vector<uint64_t> kHot = {0, 512 << 10, 1 << 20, (1 << 20) + (384 << 10), 2 << 20, (3 << 20) - 4096};
};

TEST_F(PrefetchTest, ADestinationPrefetchesWhatThePreviousRunReadAndHitsIt) {
  StartServer();
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  {
    auto first = Mount({"--prefetch", "off", "--readahead", "0", "--chunk-size", "64K", "--upload-interval", "0.2"});
    ReadAt(kHot);
    auto until = Clock::now() + std::chrono::seconds(10);
    while (Xattr(mnt_, "accesses_uploaded") != std::to_string(kHot.size()) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(Xattr(mnt_, "accesses_uploaded"), std::to_string(kHot.size()));
  }

  auto served = admin.Get(server_->url() + "/v1/vms/vm-42/profile");
  ASSERT_EQ(served.status, 200) << served.body;
  auto profile = profile::DecodeProfile(served.body);
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  // Seen by an admin, the run that uploaded minutes ago is the live one (the
  // run a migration would move); a destination host sees it as history.
  EXPECT_EQ(profile->sessions + (profile->live_session.empty() ? 0 : 1), 1u);
  EXPECT_EQ(served.headers["affinity-profile-id"], profile::ProfileId(served.body));

  cache_ = dir_ / "cache-destination";  // an empty cache: the destination host
  auto mount = Mount({"--readahead", "0", "--chunk-size", "64K"});
  ASSERT_TRUE(WaitForXattr("prefetch_state", "idle")) << Xattr(mnt_, "prefetch_state") << " "
                                                       << Xattr(mnt_, "prefetch_error");
  EXPECT_EQ(Xattr(mnt_, "profile_version").size(), 16u) << "the id of the profile the storage host built for us";
  EXPECT_EQ(Num(mnt_, "prefetch_done_bytes"), kHot.size() * 65536);
  const uint64_t misses = Num(MountPath("data.raw"), "misses");
  ReadAt(kHot);
  EXPECT_EQ(Num(MountPath("data.raw"), "misses"), misses) << "every predicted read must be a hit";
  EXPECT_EQ(Xattr(mnt_, "prefetch_used_bytes"), Xattr(mnt_, "prefetch_done_bytes"));
  EXPECT_EQ(Xattr(mnt_, "prefetch_accuracy"), "1.0000");
  EXPECT_EQ(Xattr(mnt_, "prefetch_coverage"), "1.0000");
  EXPECT_EQ(Xattr(mnt_, "demand_misses_while_queued"), "0");
  // Something the profile did not predict is still served, on demand.
  const uint64_t other = (2 << 20) + (700 << 10);
  ReadAt({other});
  EXPECT_EQ(Num(MountPath("data.raw"), "misses"), misses + 1);
  EXPECT_EQ(Xattr(mnt_, "prefetch_coverage"), Ratio(kHot.size(), kHot.size() + 1));
}

// On a slow link (4 MB/s, 20 ms), a plan of all of root.raw (8 MiB, over 2 s
// of transfer) is running when the VM reads data.raw: that read waits for at
// most the engine's in-flight bytes (1 MiB, 0.25 s) and its own round trip,
// not for the plan. The bound (1 s) leaves 4x room either way.
TEST_F(PrefetchTest, ADemandReadNeverWaitsBehindThePlan) {
  StartServer({"--test-delay-ms", "20", "--test-bandwidth", "4M"});
  profile::Profile p;
  p.vm = kVm;
  profile::ImageProfile root{"root.raw", {}, {}};
  for (uint32_t b = 0; b < kRootSize / profile::kProfileBlockSize; ++b) {
    root.blocks.push_back({.block = b, .score = 1, .support = 1, .boot_support = 1, .first_ms = b});
  }
  p.images.push_back(root);
  const std::string file = dir_ / "plan.profile";
  WriteFile(file, profile::EncodeProfile(p));
  auto mount = Mount({"--profile", file, "--readahead", "0", "--chunk-size", "64K"});
  ASSERT_TRUE(WaitForXattr("prefetch_state", "running"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the link is full of prefetch by now
  const auto t0 = Clock::now();
  ReadAt({1 << 20});
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(Num(mnt_, "prefetch_done_bytes"), Num(mnt_, "prefetch_planned_bytes")) << "the plan must still be running";
  EXPECT_LT(waited, 1.0) << "the demand read waited behind the prefetch plan";
  EXPECT_EQ(Xattr(mnt_, "prefetch_state"), "running");
}

// While the plan's critical blocks (a restart: what the boot reads) are still
// queued, reads the plan did not predict do not make prefetch yield the link:
// the VM reads those blocks next. Once only early blocks are left, they do.
// Slow link (4 MB/s, 20 ms): the 8 MiB plan runs for about 2 s, the reads
// of data.raw (not in the plan) take under 0.5 s.
class PrefetchYieldTest : public PrefetchTest {
 protected:
  // Mounts with a plan of all of root.raw, every block read by every start,
  // in (boot_support 1: critical) or after (0: early) the boot window; reads
  // four chunks of data.raw; returns prefetch_yields.
  uint64_t YieldsWithPlan(float boot_support) {
    StartServer({"--test-delay-ms", "20", "--test-bandwidth", "4M"});
    profile::Profile p;
    p.vm = kVm;
    profile::ImageProfile root{"root.raw", {}, {}};
    for (uint32_t b = 0; b < kRootSize / profile::kProfileBlockSize; ++b) {
      root.blocks.push_back({.block = b, .score = 1, .support = 1, .boot_support = boot_support, .first_ms = b});
    }
    p.images.push_back(root);
    const std::string file = dir_ / "plan.profile";
    WriteFile(file, profile::EncodeProfile(p));
    auto mount = Mount({"--profile", file, "--readahead", "0", "--chunk-size", "64K"});
    EXPECT_TRUE(WaitForXattr("prefetch_state", "running"));
    for (uint64_t off : {0ull, 1ull << 20, 2ull << 20, (3ull << 20) - 4096}) {
      ReadAt({off});
      std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a tick passes after each miss
    }
    EXPECT_EQ(Xattr(mnt_, "prefetch_state"), "running") << "the plan must still be queued";
    return Num(mnt_, "prefetch_yields");
  }
};

TEST_F(PrefetchYieldTest, UnplannedReadsDoNotHoldBackTheCriticalBlocks) {
  EXPECT_EQ(YieldsWithPlan(1.0f), 0u);
}

TEST_F(PrefetchYieldTest, UnplannedReadsMakeTheRestOfThePlanYield) {
  EXPECT_GE(YieldsWithPlan(0.0f), 1u);
}

// A host that reads without uploading still teaches the profile: the storage
// host notes what it serves (reads, not prefetches). Once the same host
// uploads a session covering that time, its own record replaces the served
// one: nothing is counted twice.
TEST_F(PrefetchTest, WhatTheStorageHostServesTeachesTheProfileOnce) {
  StartServer();
  const std::string grant = MintGrant(certs_, GrantSpec{.holder_cert = certs_.client_cert, .vm = kVm});
  Client host(certs_, certs_.client_cert, certs_.client_key, [&](const std::string&) { return grant; });
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  const std::string url = server_->url() + "/v1/vms/vm-42/images/data.raw";
  EXPECT_EQ(host.Get(url, "0-4095").status, 206);
  EXPECT_EQ(host.Get(url, "1048576-1052671").status, 206);
  RequestOptions prefetch;
  prefetch.range = "2097152-2101247";
  prefetch.headers = {"Affinity-Purpose: prefetch"};
  EXPECT_EQ(host.Perform(url, prefetch).status, 206);

  auto blocks = [&]() {
    std::vector<uint32_t> out;
    auto p = profile::DecodeProfile(admin.Get(server_->url() + "/v1/vms/vm-42/profile").body);
    if (!p.ok()) return out;
    for (const auto& img : p->images) {
      if (img.name != "data.raw") continue;
      for (const auto& b : img.blocks) out.push_back(b.block);
    }
    return out;
  };
  auto until = Clock::now() + std::chrono::seconds(10);
  while (blocks().size() < 2 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(blocks(), (std::vector<uint32_t>{0, 16})) << "served reads, not the prefetch at block 32";

  // The host's own upload for this time: [block 40] only.
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  RequestOptions upload;
  upload.method = "POST";
  upload.body = profile::EncodeAccessBatch(profile::AccessBatch{
      "s-0123456789abcdef01234567", now_ms - 5000, profile::SessionKind::kStart,
      {{0, "data.raw", 40 * 65536, 4096, profile::AccessOp::kRead, 1000}}});
  ASSERT_EQ(host.Perform(server_->url() + "/v1/vms/vm-42/accesses", upload).status, 200);
  EXPECT_EQ(blocks(), (std::vector<uint32_t>{40})) << "the upload replaces the served record of the same time";
}

TEST_F(PrefetchTest, ABadProfileLeavesTheMountServingOnDemand) {
  StartServer();
  const std::string bad = dir_ / "bad.profile";
  WriteFile(bad, "this is not a profile");
  auto mount = Mount({"--profile", bad, "--readahead", "0"});
  ASSERT_TRUE(WaitForXattr("prefetch_state", "error"));
  EXPECT_NE(Xattr(mnt_, "prefetch_error").find("profile"), std::string::npos) << Xattr(mnt_, "prefetch_error");
  EXPECT_EQ(Xattr(mnt_, "profile_version"), "none");
  ReadAt(kHot);  // bytes still right
}

TEST_F(PrefetchTest, TheProfileEndpointChecksWhoAsksAndWhatIsImported) {
  StartServer();
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  Client host(certs_, certs_.client_cert, certs_.client_key);
  EXPECT_EQ(host.Get(server_->url() + "/v1/vms/vm-42/profile").status, 401) << "no grant, no profile";
  // With no history, an imported profile is served as it is.
  profile::Profile p;
  p.vm = "vm-42";
  p.images.push_back({"data.raw", {{.block = 3, .score = 1, .support = 1}}, {}});
  const std::string encoded = profile::EncodeProfile(p);
  RequestOptions put;
  put.method = "PUT";
  put.body = encoded;
  EXPECT_EQ(admin.Perform(server_->url() + "/v1/vms/vm-42/profile", put).status, 200);
  EXPECT_EQ(admin.Get(server_->url() + "/v1/vms/vm-42/profile").body, encoded);
  put.body = "garbage";
  auto refused = admin.Perform(server_->url() + "/v1/vms/vm-42/profile", put);
  EXPECT_EQ(refused.status, 400);
  p.vm = "vm-7";
  put.body = profile::EncodeProfile(p);
  EXPECT_EQ(admin.Perform(server_->url() + "/v1/vms/vm-42/profile", put).status, 400) << "another VM's profile";
  put.body = encoded;
  EXPECT_EQ(host.Perform(server_->url() + "/v1/vms/vm-42/profile", put).status, 403) << "only an admin imports";
}

}  // namespace
}  // namespace affinity::testing
