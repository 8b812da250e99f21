// A real VM on a writable affinityfs mount: the Debian guest of
// bench/vm/build-image.sh boots under QEMU (TCG) with its root disk being
// root.raw ON THE MOUNT, read-write, no overlay; it runs the `db` workload
// (SQLite lookups and inserts with a WAL, then fsync) and powers off.
//
// What this proves, once per QEMU cache mode (writeback: the host page cache
// in between; none: O_DIRECT opens):
//   * a guest can boot, write and shut down cleanly on affinityfs;
//   * the guest's writes and flushes reach affinityfs (its counters), and
//     when QEMU has exited (its last flush is an fsync on the mount) nothing
//     is dirty and the storage host's copy is already a consistent ext4
//     (e2fsck -fn exits 0): fsync returned only once data was durable there;
//   * after a clean unmount the storage copy is still clean, and the guest's
//     database in it has the rows the guest reported having inserted.
//
// Slow (an image build on a fresh machine, minutes of TCG), so it has its own
// ctest label `vm` (ctest -L vm) and runs only in the release stage of
// scripts/test. The image is built once and cached in AFFINITY_VM_IMAGE_DIR
// (default /var/tmp/affinity-vm-image, the cache bench/vm/record-traces.sh uses).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

using std::chrono::seconds;

// Guest seconds of the db workload: long enough for many insert batches
// (thousands of rows, WAL checkpoints), short enough for CI.
constexpr int kDbSeconds = 20;
constexpr int kBootTimeoutSeconds = 300;  // boot.sh stops QEMU after this
constexpr int kBuildTimeoutSeconds = 1200;

std::string ImageDir() {
  const char* dir = std::getenv("AFFINITY_VM_IMAGE_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "/var/tmp/affinity-vm-image";
}

std::string Tail(const std::string& text, size_t n = 4000) {
  return text.size() <= n ? text : "...\n" + text.substr(text.size() - n);
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Ran {
  int status = -1;  // exit status, 128+signal, or -1 if it timed out
  std::string output;
};

// Runs argv (looked up in PATH, with the sbin directories added for e2fsck
// and debugfs) with `env` (NAME=value) set, stdout+stderr into `log`. A child
// still running at the deadline gets SIGTERM first, so boot.sh can stop QEMU
// (it forwards the signal), then SIGKILL from ~Subprocess.
Ran RunTool(const std::vector<std::string>& argv, const std::string& log, seconds timeout,
            const std::vector<std::string>& env = {}) {
  const char* path = std::getenv("PATH");
  std::string search = std::string(path != nullptr ? path : "/usr/bin:/bin") + ":/usr/sbin:/sbin";
  std::vector<std::string> full = {"/usr/bin/env", "PATH=" + search};
  full.insert(full.end(), env.begin(), env.end());
  full.insert(full.end(), argv.begin(), argv.end());
  Ran r;
  Subprocess p;
  if (!p.Start(full, log)) {
    r.output = "could not start " + argv[0];
    return r;
  }
  r.status = p.Wait(timeout);
  if (r.status == -1 && p.running()) {
    p.Signal(SIGTERM);
    p.Wait(seconds(30));
  }
  r.output = ReadWholeFile(log);
  return r;
}

struct GuestImage {
  std::string root, kernel, initrd;
};

class VmBootTest : public ReadPathTest {
 protected:
  // Builds the guest once per process (build-image.sh returns at once when
  // the cache directory already has it); every test fails if that failed.
  static const GuestImage* EnsureImage() {
    static bool tried = false;
    static GuestImage image;
    static std::string error;
    if (!tried) {
      tried = true;
      const std::string dir = ImageDir();
      auto t0 = std::chrono::steady_clock::now();
      static TempDir logs;  // outlives the tests' own directories
      Ran r = RunTool({std::string(AFFINITY_SOURCE_DIR) + "/bench/vm/build-image.sh", dir}, logs / "build-image.log",
                      seconds(kBuildTimeoutSeconds));
      std::cout << "[ vm       ] guest image in " << dir << " ready after " << SecondsSince(t0) << " s" << std::endl;
      if (r.status != 0) error = "bench/vm/build-image.sh " + dir + " exited " + std::to_string(r.status) + ":\n" +
                                 Tail(r.output);
      image = {dir + "/root.raw", dir + "/vmlinuz", dir + "/initrd.img"};
    }
    if (!error.empty()) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    return &image;
  }

  // The whole scenario for one QEMU cache mode.
  void BootDbWorkload(const std::string& cache_mode) {
    const GuestImage* image = EnsureImage();
    ASSERT_NE(image, nullptr);

    // A fresh sparse copy of the built image replaces the fixture's random
    // root.raw on the storage side, before the server and the mount see it.
    const std::string stored = SourcePath("root.raw");
    ASSERT_TRUE(std::filesystem::remove(stored));
    Ran cp = RunTool({"cp", "--sparse=always", image->root, stored}, dir_ / "cp.log", seconds(300));
    ASSERT_EQ(cp.status, 0) << cp.output;

    StartServer();
    auto m = MountWritable();

    const std::string serial = dir_ / ("serial-" + cache_mode + ".log");
    auto t0 = std::chrono::steady_clock::now();
    // The disk is the file on the mount, read-write (BOOT_DIRECT=1: no overlay).
    Ran boot = RunTool({std::string(AFFINITY_SOURCE_DIR) + "/bench/vm/boot.sh", MountPath("root.raw"), image->kernel,
                        image->initrd, "db", "1"},
                       dir_ / "boot.log", seconds(kBootTimeoutSeconds + 60),
                       {"BOOT_DIRECT=1", "BOOT_CACHE=" + cache_mode, "BOOT_LOG=" + serial,
                        "BOOT_TIMEOUT=" + std::to_string(kBootTimeoutSeconds),
                        "BOOT_APPEND=affinity.duration=" + std::to_string(kDbSeconds)});
    const double boot_s = SecondsSince(t0);
    const std::string console = ReadWholeFile(serial);
    std::cout << "[ vm       ] cache=" << cache_mode << ": boot + db workload + power-off in " << boot_s << " s"
              << std::endl;
    ASSERT_EQ(boot.status, 0) << "the guest did not finish the db workload (cache=" << cache_mode << ")\n"
                              << boot.output << "\nserial console:\n"
                              << Tail(console) << "\naffinityfs:\n"
                              << Tail(m->log());

    // What the guest says it left in its database ("db: ... rows_now=N").
    std::smatch match;
    const std::regex done(R"(db: seed=1 batches=\d+ statements=\d+ rows_now=(\d+))");
    ASSERT_TRUE(std::regex_search(console, match, done)) << Tail(console);
    const std::string guest_rows = match[1];

    // The guest's writes and flushes went through the mount, and QEMU's last
    // flush (an fsync when it closes the disk) left nothing dirty.
    const std::string on_mount = MountPath("root.raw");
    auto number = [&](const std::string& name) { return std::stoull("0" + Xattr(on_mount, name)); };
    std::cout << "[ vm       ] cache=" << cache_mode << ": " << number("bytes_written")
              << " bytes written by the guest, " << number("flushes") << " flushes, " << number("writeback_bytes")
              << " bytes written back" << std::endl;
    EXPECT_GT(number("bytes_written"), 0u);
    EXPECT_GT(number("flushes"), 0u) << "QEMU never fsynced the disk on the mount";
    EXPECT_EQ(number("dirty_bytes"), 0u);
    EXPECT_EQ(number("writeback_errors"), 0u);

    // So the storage copy must already be consistent, before any unmount.
    Ran fsck_live = RunTool({"e2fsck", "-fn", stored}, dir_ / "e2fsck-live.log", seconds(300));
    EXPECT_EQ(fsck_live.status, 0) << "storage copy after QEMU exited, still mounted:\n" << Tail(fsck_live.output);

    m->Unmount();
    ASSERT_FALSE(IsMounted(mnt_));

    Ran fsck = RunTool({"e2fsck", "-fn", stored}, dir_ / "e2fsck.log", seconds(300));
    EXPECT_EQ(fsck.status, 0) << "storage copy after the unmount:\n" << Tail(fsck.output);

    // The guest's database, read out of the storage copy: intact, and with
    // the rows the guest inserted (the image was built with fewer).
    const std::string db = dir_ / "db.sqlite";
    Ran dump = RunTool({"debugfs", "-R", "dump -p /var/lib/affinity/db.sqlite " + db, stored}, dir_ / "debugfs.log",
                       seconds(120));
    ASSERT_EQ(dump.status, 0) << dump.output;
    // A WAL left behind would hold committed rows too (sqlite3 replays it).
    RunTool({"debugfs", "-R", "dump -p /var/lib/affinity/db.sqlite-wal " + db + "-wal", stored},
            dir_ / "debugfs-wal.log", seconds(120));
    struct stat st {};
    ASSERT_EQ(::stat(db.c_str(), &st), 0) << "no /var/lib/affinity/db.sqlite in the storage copy:\n" << dump.output;
    Ran query = RunTool({"sqlite3", db,
                         "PRAGMA integrity_check; SELECT max(id) FROM orders; "
                         "SELECT value FROM meta WHERE key='orders';"},
                        dir_ / "sqlite3.log", seconds(300));
    ASSERT_EQ(query.status, 0) << query.output;
    std::smatch rows;
    ASSERT_TRUE(std::regex_match(query.output, rows, std::regex(R"(ok\n(\d+)\n(\d+)\n)"))) << query.output;
    EXPECT_EQ(rows[1].str(), guest_rows) << "rows in the storage copy's database vs. what the guest reported";
    EXPECT_GT(std::stoull(rows[1].str()), std::stoull(rows[2].str())) << "the guest inserted nothing";
  }
};

TEST_F(VmBootTest, DbWorkloadWithCacheWritebackLeavesACleanImage) { BootDbWorkload("writeback"); }

TEST_F(VmBootTest, DbWorkloadWithCacheNoneLeavesACleanImage) { BootDbWorkload("none"); }

}  // namespace
}  // namespace affinity::testing
