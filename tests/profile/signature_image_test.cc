// Each shipped signature's detection on real images made with mke2fs -d: a
// matching image (the application's package installed, or its files) and a
// non-matching one; detection reads the guest's dpkg database through the
// inspector, as the storage host does.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "profile/guest_inspector.h"
#include "profile/signature_db.h"
#include "profile/signature_matcher.h"
#include "profile/signature_priors.h"
#include "tests/support/test_env.h"

namespace affinity::profile {
namespace {

namespace fs = std::filesystem;
using affinity::testing::TempDir;

const std::string kShipped = AFFINITY_SOURCE_DIR "/profile/signatures";

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string Installed(const std::string& package) {
  return "Package: " + package + "\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\n";
}

// An image of `tree`; the applications detected on it.
std::set<std::string> Detect(const SignatureDb& db, const std::string& tree, const std::string& image) {
  fs::create_directories(tree);
  const std::string cmd = "mke2fs -q -F -t ext4 -b 4096 -d '" + tree + "' '" + image + "' 16M >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto inspector = GuestInspector::Open(image);
  EXPECT_TRUE(inspector.ok()) << inspector.status().ToString();
  if (!inspector.ok()) return {};
  auto map = (*inspector)->Inspect();
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  if (!map.ok()) return {};
  GuestFileReader read = [&](const std::string& path, size_t max) { return (*inspector)->ReadFile(path, max); };
  std::set<std::string> apps;
  for (const SignatureMatch& m : DetectApplications(db, *map, read)) apps.insert(m.application);
  return apps;
}

struct Case {
  std::string application;
  std::string package;  // installed per the dpkg database
};

TEST(SignatureImageTest, EachShippedSignatureIsDetectedOnAMatchingImageAndOnlyThere) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  ASSERT_TRUE(db.errors().empty());
  const std::vector<Case> cases = {{"postgresql", "postgresql-15"}, {"mysql", "mariadb-server-core"},
                                   {"nginx", "nginx-core"},         {"redis", "redis-server"},
                                   {"package-manager", "dpkg"}};
  TempDir dir;
  for (const Case& c : cases) {
    const std::string tree = dir / (c.application + "-tree");
    Write(tree + "/var/lib/dpkg/status", Installed("base-files") + Installed(c.package));
    // dpkg's own status file is evidence of a package manager too.
    std::set<std::string> want = {c.application, "package-manager"};
    EXPECT_EQ(Detect(db, tree, dir / (c.application + ".img")), want) << c.application;
  }
  // A package only configured, not installed, is not there.
  const std::string removed = dir / "removed-tree";
  Write(removed + "/var/lib/dpkg/status",
        "Package: nginx-core\nStatus: deinstall ok config-files\nVersion: 1.0-1\n\n");
  EXPECT_EQ(Detect(db, removed, dir / "removed.img"), (std::set<std::string>{"package-manager"}));
}

TEST(SignatureImageTest, LinuxAndItsBootloaderAreDetectedFromTheirFiles) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  TempDir dir;
  const std::string linux_tree = dir / "linux-tree";
  Write(linux_tree + "/usr/lib/systemd/systemd", "ELF");
  fs::create_directories(linux_tree + "/usr/sbin");
  fs::create_symlink("../lib/systemd/systemd", linux_tree + "/usr/sbin/init");
  fs::create_symlink("usr/sbin", linux_tree + "/sbin");
  EXPECT_EQ(Detect(db, linux_tree, dir / "linux.img"), (std::set<std::string>{"linux-boot"}));

  Write(linux_tree + "/boot/grub/grub.cfg", "menuentry 'Debian' { linux /boot/vmlinuz-6.1.0-28-amd64 }\n");
  Write(linux_tree + "/boot/vmlinuz-6.1.0-28-amd64", std::string(100'000, 'k'));
  EXPECT_EQ(Detect(db, linux_tree, dir / "disk-boot.img"), (std::set<std::string>{"disk-boot", "linux-boot"}));
}

TEST(SignatureImageTest, AnImageWithNoApplicationMatchesNothing) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  TempDir dir;
  const std::string tree = dir / "data-tree";
  Write(tree + "/data/records.bin", std::string(50'000, 'r'));
  Write(tree + "/etc/nginx.conf.example", "not nginx");  // a name alone is not the application
  EXPECT_TRUE(Detect(db, tree, dir / "data.img").empty());
}

}  // namespace
}  // namespace affinity::profile
