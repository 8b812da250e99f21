// The write path driven by the real programs a hypervisor host runs, through
// a real affinityfs mount holding the VM owner's grant:
// * fio writes random blocks (4 KiB .. 1 MiB, fixed and mixed sizes; buffered
//   with psync, O_DIRECT with psync and libaio at queue depth > 1, fsync and
//   fdatasync mid-stream) and reads every block back checking a CRC32C per
//   block; after an fsync the storage host's file is byte-identical to what
//   the mount returns, bytes no job wrote are untouched, and after an unmount
//   and a remount fio verifies every block again (--verify_only, same seed),
//   on the mount and in the storage host's file itself.
// * Writes acknowledged but not yet written back when the daemon is killed
//   (kill -9) are written back by the restarted daemon.
// * qemu-img/qemu-io write a qcow2 image through the mount (buffered and
//   O_DIRECT); the image checks clean through the mount and, after the
//   unmount wrote back, on the storage host.
// * Fixed-size images refuse what would change their size (EFBIG, EPERM,
//   EOPNOTSUPP) and change no byte doing so; a mount holding only a read
//   grant refuses writes with EROFS and still reads.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kFioImageSize = 64 * kMiB;

// Absolute path of a program found in $PATH; empty if there is none.
std::string FindTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// Where two equally long byte strings first differ, for a failure message
// (never the bytes themselves: they are megabytes).
std::string FirstDifference(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return "sizes differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      size_t end = i;
      while (end < a.size() && a[end] != b[end]) ++end;
      return "first difference at offset " + std::to_string(i) + " (64K chunk " + std::to_string(i / 65536) +
             "), " + std::to_string(end - i) + " differing bytes from there";
    }
  }
  return "identical";
}

// One fio job: a region of the image it owns alone (jobs run concurrently).
struct FioJob {
  std::string name;
  std::string options;  // block size, engine, syncs
  uint64_t offset;
  uint64_t size;
};

// Regions leave gaps no job writes (checked untouched). The 64k and bsrange
// regions start off a 64 KiB boundary, so their blocks straddle cache chunks.
std::vector<FioJob> BufferedJobs() {
  return {{"bs4k", "bs=4k\nioengine=psync\nfsync=64", 0, 8 * kMiB},
          {"bs64k", "bs=64k\nioengine=psync\nfdatasync=16", 12 * kMiB + 4096, 12 * kMiB},
          {"bs1m", "bs=1m\nioengine=psync", 28 * kMiB, 12 * kMiB},
          {"bsrange", "bsrange=4k-256k\nioengine=psync", 44 * kMiB + 12288, 12 * kMiB}};
}

std::vector<FioJob> DirectJobs() {
  return {{"bs4k", "bs=4k\nioengine=libaio\niodepth=16", 0, 8 * kMiB},
          {"bs64k", "bs=64k\nioengine=psync\nfdatasync=16", 12 * kMiB + 4096, 12 * kMiB},
          {"bs1m", "bs=1m\nioengine=libaio\niodepth=4", 28 * kMiB, 12 * kMiB},
          {"bsrange", "bsrange=4k-256k\nioengine=libaio\niodepth=8", 44 * kMiB + 12288, 12 * kMiB}};
}

// Bytes of `image` outside every job's region.
std::string Gaps(const std::string& image, const std::vector<FioJob>& jobs) {
  std::string out;
  uint64_t pos = 0;
  for (const FioJob& j : jobs) {
    out += image.substr(pos, j.offset - pos);
    pos = j.offset + j.size;
  }
  return out + image.substr(pos);
}

// What a fio run does: write then read back and verify (fsync before the
// reads and at the end), only verify what the same seed writes, or only write
// (no fsync at all: the writes may be dirty in the cache when fio exits).
enum class FioMode { kWriteVerify, kVerifyOnly, kWriteOnly };

struct ToolRun {
  int status = -1;  // exit status, 128+signal, -1: did not finish in time
  std::string output;
};

class WriteClientsTest : public ReadPathTest {
 protected:
  // Runs a program (looked up in $PATH) to completion, bounded; its
  // stdout+stderr go into the result (and so into assertion messages).
  ToolRun Run(std::vector<std::string> argv, std::chrono::seconds timeout = std::chrono::seconds(300)) {
    ToolRun r;
    std::string exe = FindTool(argv[0]);
    if (exe.empty()) {
      r.output = argv[0] + " not found in PATH";
      return r;
    }
    argv[0] = exe;
    std::string log = dir_ / ("tool." + std::to_string(++runs_) + ".log");
    Subprocess p;
    if (!p.Start(argv, log)) {
      r.output = "could not start " + exe;
      return r;
    }
    r.status = p.Wait(timeout);  // Subprocess kills it on destruction if it hangs
    r.output = ReadWholeFile(log);
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    r.output = "$ " + cmd + "\n" + r.output;
    if (r.status < 0) r.output += "\n(timed out after " + std::to_string(timeout.count()) + " s)";
    return r;
  }

  // A fio job file: random writes with a CRC32C and a header (offset, length)
  // per block, each block written once (fio's random map). verify_only checks
  // each block against its own header, not which write it holds; as every
  // block is written once, a lost write shows as the image's old bytes
  // ("bad magic header"), and the byte-for-byte comparisons cover the rest.
  static std::string FioJobFile(const std::string& file, const std::vector<FioJob>& jobs, bool direct, uint64_t seed,
                                FioMode mode) {
    std::string text =
        "[global]\n"
        "filename=" + file + "\n"
        "allow_file_create=0\n"  // the image must exist on the mount; never make one
        "direct=" + std::string(direct ? "1" : "0") + "\n"
        "rw=randwrite\n"
        "verify=crc32c\n"
        "verify_fatal=1\n"
        "verify_state_save=0\n"  // no state files in the working directory
        "randrepeat=1\n"
        "randseed=" + std::to_string(seed) + "\n";
    if (mode == FioMode::kWriteOnly) text += "do_verify=0\n";
    if (mode != FioMode::kWriteOnly) text += "do_verify=1\nend_fsync=1\n";
    if (mode == FioMode::kVerifyOnly) text += "verify_only=1\n";
    for (const FioJob& j : jobs) {
      text += "\n[" + j.name + "]\n" + j.options + "\noffset=" + std::to_string(j.offset) +
              "\nsize=" + std::to_string(j.size) + "\n";
    }
    return text;
  }

  // Runs a job file; `report` receives fio's JSON report (may be empty).
  ToolRun RunFioJobFile(const std::string& text, std::string* report) {
    std::string tag = std::to_string(++runs_);
    std::string job_file = dir_ / ("fio." + tag + ".fio");
    std::string json_file = dir_ / ("fio." + tag + ".json");
    FILE* f = std::fopen(job_file.c_str(), "w");
    EXPECT_NE(f, nullptr) << job_file;
    if (f == nullptr) return {};
    std::fputs(text.c_str(), f);
    std::fclose(f);
    ToolRun r = Run({"fio", "--output-format=json", "--output=" + json_file, job_file});
    r.output += "\njob file:\n" + text;
    *report = ReadWholeFile(json_file);
    return r;
  }

  // Runs the jobs as one fio invocation against `file` (jobs run
  // concurrently) and checks that every job did all its I/O without error.
  void RunFio(const std::string& file, const std::vector<FioJob>& jobs, bool direct, uint64_t seed, FioMode mode) {
    std::string report;
    ToolRun r = RunFioJobFile(FioJobFile(file, jobs, direct, seed, mode), &report);
    std::string context = r.output + "\n" + Xattrs(file);
    ASSERT_EQ(r.status, 0) << context << "\nreport:\n" << report.substr(0, 4000);
    // fio may put notes before the JSON document.
    size_t brace = report.find('{');
    ASSERT_NE(brace, std::string::npos) << context << "\nreport:\n" << report;
    auto doc = nlohmann::json::parse(report.substr(brace), nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << context << "\nreport:\n" << report;
    ASSERT_EQ(doc["jobs"].size(), jobs.size()) << context;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const auto& job = doc["jobs"][i];
      SCOPED_TRACE(job["jobname"].get<std::string>() + " mode " + std::to_string(static_cast<int>(mode)));
      EXPECT_EQ(job["error"].get<int>(), 0) << context;
      // Every block written, every block read back: the whole region
      // (verify_only reports the writes it replayed without doing them).
      EXPECT_EQ(job["write"]["io_bytes"].get<uint64_t>(), jobs[i].size) << context;
      EXPECT_EQ(job["read"]["io_bytes"].get<uint64_t>(), mode == FioMode::kWriteOnly ? 0 : jobs[i].size) << context;
    }
  }

  // The write-back xattrs, for failure messages (without failing on their own).
  static std::string Xattrs(const std::string& path) {
    std::string out;
    for (const char* name : {"dirty_bytes", "writeback_queue", "writeback_errors"}) {
      char buf[64];
      ssize_t n = ::getxattr(path.c_str(), (std::string("user.affinity.") + name).c_str(), buf, sizeof buf);
      out += std::string(name) + "=" + (n < 0 ? std::string("?") : std::string(buf, static_cast<size_t>(n))) + " ";
    }
    return out;
  }

  // fsync through the mount: returns once every write is on the storage host.
  void Fsync(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    EXPECT_EQ(::fsync(fd), 0) << path << ": " << std::strerror(errno);
    ::close(fd);
    EXPECT_EQ(Xattr(path, "dirty_bytes"), "0") << path;
    EXPECT_EQ(Xattr(path, "writeback_errors"), "0") << path;
  }

  // The storage host's copy and a read through the mount, byte for byte;
  // returns what the mount read.
  std::string ExpectStorageMatchesMount(const std::string& image) {
    std::string stored = ReadWholeFile(SourcePath(image));
    std::string mounted = ReadWholeFile(MountPath(image));
    EXPECT_TRUE(stored == mounted) << image << ": storage host vs mount: " << FirstDifference(stored, mounted);
    return mounted;
  }

  int runs_ = 0;
};

TEST_F(WriteClientsTest, FioRandomWritesVerifyBufferedAndDirectAndSurviveARemount) {
  if (FindTool("fio").empty()) GTEST_SKIP() << "fio is not installed (scripts/install-deps installs it)";
  // One image full of random bytes (partial chunk writes must keep the rest),
  // one sparse (all zero); both have the fixed size fio works within.
  WriteRandomFile(SourcePath("fio-buffered.raw"), kFioImageSize, 99);
  {
    int fd = ::open(SourcePath("fio-direct.raw").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kFioImageSize)), 0);
    ::close(fd);
  }
  const std::string original_buffered = ReadWholeFile(SourcePath("fio-buffered.raw"));
  const std::string original_direct(kFioImageSize, '\0');
  const std::vector<std::string> args = {"--chunk-size", "64K"};

  StartServer();
  auto m = MountWritable(args);
  RunFio(MountPath("fio-buffered.raw"), BufferedJobs(), false, 1111, FioMode::kWriteVerify);
  RunFio(MountPath("fio-direct.raw"), DirectJobs(), true, 2222, FioMode::kWriteVerify);
  if (HasFatalFailure()) return;

  // After fsync the storage host has every write; nothing else changed.
  Fsync(MountPath("fio-buffered.raw"));
  Fsync(MountPath("fio-direct.raw"));
  std::string written_buffered = ExpectStorageMatchesMount("fio-buffered.raw");
  std::string written_direct = ExpectStorageMatchesMount("fio-direct.raw");
  EXPECT_FALSE(written_buffered == original_buffered) << "fio wrote nothing?";
  EXPECT_FALSE(written_direct == original_direct) << "fio wrote nothing?";
  EXPECT_TRUE(Gaps(written_buffered, BufferedJobs()) == Gaps(original_buffered, BufferedJobs()))
      << "bytes no job wrote changed: " << FirstDifference(Gaps(written_buffered, BufferedJobs()),
                                                           Gaps(original_buffered, BufferedJobs()));
  EXPECT_TRUE(Gaps(written_direct, DirectJobs()) == Gaps(original_direct, DirectJobs()))
      << "bytes no job wrote changed: " << FirstDifference(Gaps(written_direct, DirectJobs()),
                                                           Gaps(original_direct, DirectJobs()));

  // A new mount (no page cache, a daemon that starts from its cache index
  // and the storage host) reads back what every job wrote.
  m->Unmount();
  m.reset();  // before the new mount: its destructor unmounts whatever is on mnt_
  m = MountWritable(args);
  RunFio(MountPath("fio-buffered.raw"), BufferedJobs(), false, 1111, FioMode::kVerifyOnly);
  RunFio(MountPath("fio-direct.raw"), DirectJobs(), true, 2222, FioMode::kVerifyOnly);
  EXPECT_TRUE(ExpectStorageMatchesMount("fio-buffered.raw") == written_buffered) << "changed by verify_only";
  EXPECT_TRUE(ExpectStorageMatchesMount("fio-direct.raw") == written_direct) << "changed by verify_only";

  // The check above can fail: a region no job wrote (a gap) holds no fio
  // block headers, and verifying it as if it did must report an error.
  std::string report;
  ToolRun r = RunFioJobFile(FioJobFile(MountPath("fio-buffered.raw"), {{"gap", "bs=64k", 8 * kMiB, 4 * kMiB}}, false,
                                       1111, FioMode::kVerifyOnly),
                            &report);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("verify: bad magic header"), std::string::npos) << r.output;
  m->Unmount();

  // fio itself finds every block in the storage host's files.
  RunFio(SourcePath("fio-buffered.raw"), BufferedJobs(), false, 1111, FioMode::kVerifyOnly);
  RunFio(SourcePath("fio-direct.raw"), DirectJobs(), false, 2222, FioMode::kVerifyOnly);
}

TEST_F(WriteClientsTest, FioWritesLeftDirtyByAKill9AreWrittenBackAfterARestart) {
  if (FindTool("fio").empty()) GTEST_SKIP() << "fio is not installed (scripts/install-deps installs it)";
  WriteRandomFile(SourcePath("fio-kill.raw"), 32 * kMiB, 77);
  // What a VM does: one writer flushes often, so write-backs run while the
  // other writer's partial-chunk writes fetch from the storage host...
  const std::vector<FioJob> busy = {{"flushing", "bs=64k\nioengine=psync\nfdatasync=1", 4096, 4 * kMiB},
                                    {"unflushed", "bs=4k\nioengine=libaio\niodepth=8", 8 * kMiB, 8 * kMiB}};
  // ...then it writes more and is killed before those writes are written
  // back (well within the write-back delay): they are only in the local cache.
  const std::vector<FioJob> last = {{"last", "bs=4k\nioengine=psync", 20 * kMiB + 2048, 2 * kMiB}};
  const std::vector<std::string> args = {"--chunk-size", "64K", "--writeback-delay", "10"};
  StartServer();
  auto m = MountWritable(args);
  RunFio(MountPath("fio-kill.raw"), busy, true, 5555, FioMode::kWriteOnly);
  RunFio(MountPath("fio-kill.raw"), last, false, 6666, FioMode::kWriteOnly);
  if (HasFatalFailure()) return;
  ASSERT_GT(std::stoull(Xattr(MountPath("fio-kill.raw"), "dirty_bytes")), 0u) << "nothing left to write back";
  m->Kill9();
  m->Start();  // resumes the write-back (docs/writes.md)
  ASSERT_FALSE(HasFatalFailure());
  RunFio(MountPath("fio-kill.raw"), busy, true, 5555, FioMode::kVerifyOnly);
  RunFio(MountPath("fio-kill.raw"), last, false, 6666, FioMode::kVerifyOnly);
  Fsync(MountPath("fio-kill.raw"));
  ExpectStorageMatchesMount("fio-kill.raw");
  m->Unmount();
  RunFio(SourcePath("fio-kill.raw"), busy, false, 5555, FioMode::kVerifyOnly);
  RunFio(SourcePath("fio-kill.raw"), last, false, 6666, FioMode::kVerifyOnly);
}

TEST_F(WriteClientsTest, QemuWritesAQcow2ImageThroughTheMountAndItIsWrittenBack) {
  if (FindTool("qemu-img").empty() || FindTool("qemu-io").empty()) {
    GTEST_SKIP() << "qemu-img/qemu-io are not installed (scripts/install-deps installs qemu-utils)";
  }
  // Images have a fixed size, and a growing qcow2 appends clusters past its
  // end of file: metadata preallocation makes every cluster exist up front,
  // so guest writes land inside the file.
  const std::string source = SourcePath("disk.qcow2");
  ToolRun r = Run({"qemu-img", "create", "-f", "qcow2", "-o", "preallocation=metadata", source, "64M"});
  ASSERT_EQ(r.status, 0) << r.output;
  struct stat before {};
  ASSERT_EQ(::stat(source.c_str(), &before), 0);

  StartServer();
  auto m = MountWritable({"--chunk-size", "64K"});
  const std::string disk = MountPath("disk.qcow2");
  auto expect_ok = [](const ToolRun& run) {
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(run.output.find("Pattern verification failed"), std::string::npos) << run.output;
  };
  r = Run({"qemu-img", "check", "-f", "qcow2", disk});
  expect_ok(r);
  EXPECT_NE(r.output.find("No errors were found"), std::string::npos) << r.output;

  // Buffered, at the start of the disk.
  r = Run({"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M", disk});
  expect_ok(r);
  EXPECT_NE(r.output.find("wrote 1048576/1048576 bytes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("read 1048576/1048576 bytes"), std::string::npos) << r.output;
  ASSERT_FALSE(HasFailure()) << "the first write through the mount failed; the rest would only repeat it";
  // O_DIRECT (cache=none), at an offset that is not on a chunk boundary;
  // it also reads what the buffered run wrote.
  r = Run({"qemu-io", "-f", "qcow2", "-t", "none", "-c", "write -P 0xcd 10489856 256k", "-c",
           "read -P 0xcd 10489856 256k", "-c", "read -P 0xab 0 1M", disk});
  expect_ok(r);
  EXPECT_NE(r.output.find("wrote 262144/262144 bytes"), std::string::npos) << r.output;
  // A buffered reader sees the O_DIRECT write; untouched guest blocks read zero.
  const std::vector<std::string> reads = {"-c", "read -P 0xab 0 1M", "-c", "read -P 0xcd 10489856 256k",
                                          "-c", "read -P 0 2M 1M"};
  std::vector<std::string> argv = {"qemu-io", "-r", "-f", "qcow2"};
  argv.insert(argv.end(), reads.begin(), reads.end());
  argv.push_back(disk);
  r = Run(argv);
  expect_ok(r);
  EXPECT_NE(r.output.find("read 262144/262144 bytes"), std::string::npos) << r.output;
  r = Run({"qemu-img", "check", "-f", "qcow2", disk});
  expect_ok(r);

  // qemu flushed (fdatasync) when it closed the image: the storage host
  // already has every byte, and the size never changed.
  std::string through_mount = ExpectStorageMatchesMount("disk.qcow2");
  EXPECT_EQ(through_mount.size(), static_cast<size_t>(before.st_size));
  EXPECT_EQ(Xattr(disk, "dirty_bytes"), "0");
  m->Unmount();

  // The storage host's copy on its own: a consistent qcow2 with the data.
  struct stat after {};
  ASSERT_EQ(::stat(source.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  r = Run({"qemu-img", "check", "-f", "qcow2", source});
  expect_ok(r);
  EXPECT_NE(r.output.find("No errors were found"), std::string::npos) << r.output;
  argv = {"qemu-io", "-r", "-f", "qcow2"};
  argv.insert(argv.end(), reads.begin(), reads.end());
  argv.push_back(source);
  r = Run(argv);
  expect_ok(r);
  EXPECT_NE(r.output.find("read 1048576/1048576 bytes"), std::string::npos) << r.output;
}

TEST_F(WriteClientsTest, FixedSizeRefusesGrowShrinkAndHolesAndChangesNoByte) {
  StartServer();
  auto m = MountWritable({"--chunk-size", "64K"});
  const std::string path = MountPath("root.raw");
  const off_t size = static_cast<off_t>(kRootSize);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string block(4096, 'W');

  // Past the end: EFBIG, at EOF and far beyond.
  errno = 0;
  EXPECT_EQ(::pwrite(fd, block.data(), block.size(), size), -1);
  EXPECT_EQ(errno, EFBIG) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::pwrite(fd, block.data(), 1, size + static_cast<off_t>(kMiB)), -1);
  EXPECT_EQ(errno, EFBIG) << std::strerror(errno);
  // Straddling EOF: a short write of at most what fits, or nothing (EFBIG).
  // (The kernel sends a write that starts in a page it does not cache as
  // one request per page, and the part past EOF is refused on its own.)
  errno = 0;
  ssize_t straddle = ::pwrite(fd, block.data(), 200, size - 100);
  int straddle_errno = errno;
  EXPECT_TRUE((straddle > 0 && straddle <= 100) || (straddle == -1 && straddle_errno == EFBIG))
      << "returned " << straddle << ", " << std::strerror(straddle_errno);
  std::string expected = root_bytes_;
  if (straddle > 0 && straddle <= 100) {
    expected.replace(static_cast<size_t>(size) - 100, static_cast<size_t>(straddle), static_cast<size_t>(straddle), 'W');
  }

  // Any other size: EPERM, through ftruncate, truncate and open(O_TRUNC).
  for (off_t to : {off_t{0}, size - 1, size + 1, size + static_cast<off_t>(kMiB)}) {
    errno = 0;
    EXPECT_EQ(::ftruncate(fd, to), -1) << "to " << to;
    EXPECT_EQ(errno, EPERM) << "to " << to << ": " << std::strerror(errno);
  }
  errno = 0;
  EXPECT_EQ(::truncate(path.c_str(), 4096), -1);
  EXPECT_EQ(errno, EPERM) << std::strerror(errno);
  errno = 0;
  int trunc_fd = ::open(path.c_str(), O_RDWR | O_TRUNC);
  EXPECT_EQ(trunc_fd, -1) << "open(O_TRUNC) of a fixed-size image succeeded";
  EXPECT_EQ(errno, EPERM) << std::strerror(errno);
  if (trunc_fd >= 0) ::close(trunc_fd);
  // The same size is no change.
  EXPECT_EQ(::ftruncate(fd, size), 0) << std::strerror(errno);

  // Reserving space inside the image is fine and keeps the data; growing it
  // or making holes is not.
  EXPECT_EQ(::fallocate(fd, 0, 0, static_cast<off_t>(kMiB)), 0) << std::strerror(errno);
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 * kMiB + 4096, 65536), 0) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::fallocate(fd, 0, size - 4096, 8192), -1) << "fallocate grew a fixed-size image";
  EXPECT_EQ(errno, EFBIG) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * kMiB, 65536), -1);
  EXPECT_EQ(errno, EOPNOTSUPP) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 3 * kMiB, 65536), -1);
  EXPECT_EQ(errno, EOPNOTSUPP) << std::strerror(errno);

  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, size);
  std::string now = ReadWholeFile(path);
  EXPECT_TRUE(now == expected) << "a refused call changed data: " << FirstDifference(now, expected);

  // Up to the last byte is inside the image: it is written, and written back.
  ASSERT_EQ(::pwrite(fd, block.data(), 100, size - 100), 100) << std::strerror(errno);
  expected.replace(static_cast<size_t>(size) - 100, 100, 100, 'W');
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_TRUE(ExpectStorageMatchesMount("root.raw") == expected);
  ASSERT_EQ(::stat(SourcePath("root.raw").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, size);
  m->Unmount();
}

TEST_F(WriteClientsTest, AMountWithOnlyAReadGrantRefusesWritesWithErofsAndStillReads) {
  StartServer();
  auto m = Mount({"--chunk-size", "64K"});  // a standing read grant, not the owner's
  const std::string path = MountPath("data.raw");
  std::string block(4096, 'R');
  for (int flags : {O_RDWR, O_WRONLY}) {
    // Refused at open, or at the first write: either way EROFS.
    errno = 0;
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) {
      EXPECT_EQ(errno, EROFS) << "open flags " << flags << ": " << std::strerror(errno);
      continue;
    }
    errno = 0;
    EXPECT_EQ(::pwrite(fd, block.data(), block.size(), 0), -1);
    EXPECT_EQ(errno, EROFS) << std::strerror(errno);
    errno = 0;
    EXPECT_EQ(::fallocate(fd, 0, 0, 4096), -1);
    EXPECT_EQ(errno, EROFS) << std::strerror(errno);
    ::close(fd);
  }
  // Changing the size is refused too (a fixed size would refuse it anyway).
  errno = 0;
  EXPECT_EQ(::truncate(path.c_str(), 4096), -1);
  EXPECT_TRUE(errno == EROFS || errno == EPERM) << std::strerror(errno);

  std::string read = ReadWholeFile(path);
  EXPECT_TRUE(read == data_bytes_) << FirstDifference(read, data_bytes_);
  std::string stored = ReadWholeFile(SourcePath("data.raw"));
  EXPECT_TRUE(stored == data_bytes_) << "the storage host's copy changed: " << FirstDifference(stored, data_bytes_);
  m->Unmount();
}

}  // namespace
}  // namespace affinity::testing
