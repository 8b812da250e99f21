// Application signatures end to end (issue 6): two VMs whose ext4 images
// hold the same application at different offsets. VM vm-7 boots once and
// uploads what it read; the storage host inspects both images, learns from
// vm-7 which of nginx's and the boot's files a start reads, and serves vm-42
// (no history at all) a profile that names ITS blocks of those files. A
// destination mounting vm-42 prefetches them and the VM's reads of them are
// cache hits. Real images (mke2fs -d), real daemons, real TLS, real FUSE.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "profile/access_batch.h"
#include "profile/guest_inspector.h"
#include "profile/prefetch_plan.h"
#include "profile/profile_codec.h"
#include "tests/fs/read_path_fixture.h"
#include "tests/support/curl_test_client.h"

namespace affinity::testing {
namespace {

using Clock = std::chrono::steady_clock;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

void MakeDir(const std::string& path) { ASSERT_EQ(std::system(("mkdir -p '" + path + "'").c_str()), 0) << path; }

// A small Debian-like guest tree with nginx, `filler` MiB of other packages
// and its own block size, so two images place nginx's files at other offsets.
void MakeGuestImage(const std::string& tree, const std::string& image, int filler_mib, int block_size) {
  for (const char* d : {"/usr/sbin", "/usr/lib/systemd", "/etc/nginx", "/var/lib/dpkg/info", "/usr/share/filler",
                        "/srv/www"}) {
    MakeDir(tree + d);
  }
  ASSERT_EQ(::symlink("usr/sbin", (tree + "/sbin").c_str()), 0);
  ASSERT_EQ(::symlink("usr/lib", (tree + "/lib").c_str()), 0);
  for (int i = 0; i < filler_mib; ++i) WriteRandomFile(tree + "/usr/share/filler/p" + std::to_string(i), 1 << 20, i);
  WriteRandomFile(tree + "/usr/lib/systemd/systemd", 300'000, 100);
  Write(tree + "/etc/fstab", "/dev/vda / ext4 rw 0 1\n");
  WriteRandomFile(tree + "/usr/sbin/nginx", 700'000, 101);
  Write(tree + "/etc/nginx/nginx.conf", "worker_processes auto;\n");
  WriteRandomFile(tree + "/srv/www/site.bin", 2'000'000, 102);
  Write(tree + "/var/lib/dpkg/status",
        "Package: nginx-core\nStatus: install ok installed\nVersion: 1.22.1-9\nArchitecture: amd64\n\n");
  Write(tree + "/var/lib/dpkg/info/nginx-core.list", "/.\n/usr\n/usr/sbin\n/usr/sbin/nginx\n");
  const std::string cmd = "mke2fs -q -F -t ext4 -b " + std::to_string(block_size) + " -d '" + tree + "' '" + image + "' 64M";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

const profile::GuestFile& FileIn(const profile::GuestFileMap& map, const std::string& path) {
  auto it = std::find_if(map.files.begin(), map.files.end(), [&](const auto& f) { return f.path == path; });
  if (it == map.files.end()) throw std::runtime_error("no " + path + " in the image");
  return *it;
}

std::set<uint32_t> BlocksOf(const profile::GuestFile& f) {
  std::set<uint32_t> out;
  for (const auto& e : f.extents) {
    for (uint64_t b = e.offset / profile::kProfileBlockSize; b * profile::kProfileBlockSize < e.offset + e.length; ++b) {
      out.insert(static_cast<uint32_t>(b));
    }
  }
  return out;
}

class SignaturePrefetchTest : public ReadPathTest {};

TEST_F(SignaturePrefetchTest, AVmWithNoHistoryPrefetchesWhatAnotherVmsStartsTaughtAboutItsApplications) {
  const std::string teacher_image = root_ + "/vm-7/root.raw";
  const std::string new_image = SourcePath("guest.raw");
  MakeDir(root_ + "/vm-7");
  MakeGuestImage(dir_ / "tree-7", teacher_image, 0, 4096);
  MakeGuestImage(dir_ / "tree-42", new_image, 5, 1024);
  auto teacher_map = profile::InspectImage(teacher_image);
  auto new_map = profile::InspectImage(new_image);
  ASSERT_TRUE(teacher_map.ok()) << teacher_map.status().ToString();
  ASSERT_TRUE(new_map.ok()) << new_map.status().ToString();
  const auto& teacher_nginx = FileIn(*teacher_map, "/usr/sbin/nginx");
  const auto& new_nginx = FileIn(*new_map, "/usr/sbin/nginx");
  ASSERT_NE(teacher_nginx.extents, new_nginx.extents) << "the images must place nginx differently";

  StartServer();
  // vm-7 boots: it reads systemd, fstab, then nginx and its config; it
  // uploads that session, as an affinityfs mount would.
  const std::string grant = MintGrant(certs_, GrantSpec{.holder_cert = certs_.client_cert, .vm = "vm-7"});
  Client host(certs_, certs_.client_cert, certs_.client_key, [&](const std::string&) { return grant; });
  std::vector<profile::AccessRecord> reads;
  uint64_t t_us = 1000;
  for (const char* path : {"/usr/lib/systemd/systemd", "/etc/fstab", "/usr/sbin/nginx", "/etc/nginx/nginx.conf"}) {
    for (const auto& e : FileIn(*teacher_map, path).extents) {
      reads.push_back({reads.size(), "root.raw", e.offset, e.length, profile::AccessOp::kRead, t_us});
      t_us += 500'000;
    }
  }
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  RequestOptions upload;
  upload.method = "POST";
  upload.body = profile::EncodeAccessBatch(
      profile::AccessBatch{"s-0123456789abcdef01234567", now_ms - 3'600'000, profile::SessionKind::kStart, reads});
  ASSERT_EQ(host.Perform(server_->url() + "/v1/vms/vm-7/accesses", upload).status, 200);

  // vm-7's profile is built (and teaches the storage host), then vm-42's.
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  ASSERT_EQ(admin.Get(server_->url() + "/v1/vms/vm-7/profile").status, 200);
  auto served = admin.Get(server_->url() + "/v1/vms/vm-42/profile");
  ASSERT_EQ(served.status, 200) << served.body;
  auto p = profile::DecodeProfile(served.body);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->sessions, 0u) << "vm-42 has no history";
  std::set<std::string> apps;
  for (const auto& s : p->signatures) apps.insert(s.application);
  EXPECT_TRUE(apps.count("linux-boot") == 1 && apps.count("nginx") == 1) << served.body.size();
  for (const auto& s : p->signatures) {
    if (s.application != "nginx") continue;
    EXPECT_NE(s.evidence.find("guest.raw: dpkg: nginx-core 1.22.1-9 installed"), std::string::npos) << s.evidence;
  }
  // The restart plan names vm-42's own blocks of the files vm-7 read: the
  // boot's as critical; and not its web data, which nobody taught.
  const auto plan = profile::BuildPrefetchPlan(*p, profile::PlanOptions{});
  std::map<uint32_t, profile::PrefetchClass> planned;
  for (const auto& item : plan) {
    if (p->images[item.image].name == "guest.raw") planned.emplace(item.block, item.cls);
  }
  for (uint32_t b : BlocksOf(FileIn(*new_map, "/usr/lib/systemd/systemd"))) {
    ASSERT_TRUE(planned.count(b)) << "systemd block " << b;
    EXPECT_EQ(planned[b], profile::PrefetchClass::kCritical) << b;
  }
  for (uint32_t b : BlocksOf(new_nginx)) EXPECT_TRUE(planned.count(b)) << "nginx block " << b;
  // Its web data, which nobody taught, is not planned, but for the 64 KiB
  // blocks it shares with a file or a directory that is.
  std::set<uint32_t> shared;
  for (const auto& f : new_map->files) {
    if (f.path == "/srv/www/site.bin") continue;
    std::set<uint32_t> blocks = BlocksOf(f);
    shared.insert(blocks.begin(), blocks.end());
  }
  for (uint32_t b : BlocksOf(FileIn(*new_map, "/srv/www/site.bin"))) {
    if (shared.count(b) == 0) {
      EXPECT_FALSE(planned.count(b)) << b;
    }
  }

  // A destination mounting vm-42 prefetches them; the VM's reads of nginx are hits.
  auto mount = Mount({"--readahead", "0", "--chunk-size", "64K", "--arrival", "restart"});
  auto until = Clock::now() + std::chrono::seconds(20);
  while (Xattr(mnt_, "prefetch_state") != "idle" && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(Xattr(mnt_, "prefetch_state"), "idle") << Xattr(mnt_, "prefetch_error");
  // One 4 KiB read in each of nginx's 64 KiB blocks (bigger reads would let
  // the kernel's own read-ahead ask for blocks beyond the file).
  const uint64_t misses = std::stoull(Xattr(MountPath("guest.raw"), "misses"));
  const std::string image_bytes = ReadWholeFile(new_image);
  int fd = ::open(MountPath("guest.raw").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (uint32_t b : BlocksOf(new_nginx)) {
    std::string buf(4096, '\0');
    const uint64_t at = uint64_t{b} * profile::kProfileBlockSize;
    ASSERT_EQ(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at)), 4096);
    EXPECT_EQ(buf, image_bytes.substr(at, 4096));
  }
  ::close(fd);
  EXPECT_EQ(std::stoull(Xattr(MountPath("guest.raw"), "misses")), misses)
      << "nginx was prefetched; planned " << Xattr(mnt_, "prefetch_planned_bytes") << " done "
      << Xattr(mnt_, "prefetch_done_bytes") << " skipped " << Xattr(mnt_, "prefetch_skipped");
}

// The storage host keeps inspections in --state/inspections across restarts;
// a damaged one is noticed, and the image is inspected again: the profile
// is the same as before.
TEST_F(SignaturePrefetchTest, ADamagedInspectionCacheIsInspectedAgain) {
  MakeGuestImage(dir_ / "tree", SourcePath("guest.raw"), 0, 4096);
  StartServer();
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  auto first = profile::DecodeProfile(admin.Get(server_->url() + "/v1/vms/vm-42/profile").body);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->signatures.empty());
  const std::string cache = state_ + "/inspections/vm-42/guest.raw.gfm";
  const std::string stored = ReadWholeFile(cache);
  ASSERT_FALSE(stored.empty()) << "the inspection is kept in " << cache;

  server_.reset();
  // The same image version on its first line, garbage after it.
  Write(cache, stored.substr(0, stored.find('\n') + 1) + "not a file map");
  StartServer();
  auto second = profile::DecodeProfile(admin.Get(server_->url() + "/v1/vms/vm-42/profile").body);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->signatures, first->signatures);
  EXPECT_EQ(second->images, first->images);
  EXPECT_NE(ReadWholeFile(cache), stored.substr(0, stored.find('\n') + 1) + "not a file map") << "written again";
}

// Images the inspector cannot read (random bytes: no file system) change
// nothing: vm-42's profile stays the history-only, empty one.
TEST_F(SignaturePrefetchTest, AnImageWithNoFileSystemGetsNoSignatures) {
  StartServer();
  Client admin(certs_, certs_.admin_cert, certs_.admin_key);
  auto served = admin.Get(server_->url() + "/v1/vms/vm-42/profile");
  ASSERT_EQ(served.status, 200);
  auto p = profile::DecodeProfile(served.body);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->signatures.empty());
  EXPECT_TRUE(p->images.empty());
}

}  // namespace
}  // namespace affinity::testing
