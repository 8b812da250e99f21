// A randomized, model-based test of the write path in the style of fsx.
//
// Each image (data.raw: 3 MiB, chunk aligned; root.raw: 8 MiB + 12345, with a
// partial last chunk) has a reference model, a std::string of what the image
// must contain. Thousands of seeded random operations run against the real
// mount and the real storage host: unaligned pwrites of 1 B to 300 KiB that
// cross chunk boundaries (some through an O_DIRECT fd, some all zeros), writes
// at and past EOF (EFBIG: images have a fixed size), preads compared with the
// model, fsync/fdatasync (after which the storage host's copy must equal the
// model byte for byte), close/reopen, clean remounts, kill -9 of the daemon
// while idle and while a writer thread has a write in flight (every
// acknowledged write must survive; only the in-flight write's range may hold
// old or new bytes), and storage host outages (writes that need nothing from
// the storage host still succeed, dirty chunks are still read; after the
// restart an fsync succeeds and the storage copy matches). A second variant
// runs with a 1 MiB cache over 16 KiB chunks, so eviction and writers that
// wait for write-back are exercised. Any sequence that loses or corrupts an
// acknowledged byte, on the mount or on the storage host, or that leaves
// dirty bytes after a final fsync, fails the test.
//
// The seed is random unless AFFINITY_FSX_SEED=N is set; it is printed at the
// start and in every failure message. AFFINITY_FSX_OPS=N sets the operation
// count per variant, AFFINITY_FSX_VERBOSE=1 prints every operation (to reduce
// a failure).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "tests/fs/read_path_fixture.h"

namespace affinity::testing {
namespace {

constexpr uint64_t kAlign = 4096;        // O_DIRECT offsets, lengths and buffers
constexpr uint64_t kMaxWrite = 300 * 1024;
constexpr uint64_t kMaxRead = 512 * 1024;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

// Sanitized builds are ~3x slower: a third of the operations keeps them well
// inside the time budget and still reaches every kind of operation.
uint64_t DefaultOps(uint64_t release_ops) {
  return EnvU64("AFFINITY_FSX_OPS", kSanitized ? release_ops / 3 : release_ops);
}

uint64_t SeedFromEnvOrRandom() {
  const char* v = std::getenv("AFFINITY_FSX_SEED");
  if (v != nullptr && *v != '\0') return std::strtoull(v, nullptr, 0);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) % 1000000000ull;
}

std::string Hex(unsigned char c) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%02x", c);
  return b;
}

// The index of the first differing byte of two equally long ranges, or -1.
int64_t FirstMismatch(const char* got, const char* want, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (got[i] != want[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

ssize_t PwriteAll(int fd, const char* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, off + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      // Bytes already written were acknowledged: report them, not the error.
      return done > 0 ? static_cast<ssize_t>(done) : -errno;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

// A buffer aligned for O_DIRECT.
struct AlignedBuf {
  explicit AlignedBuf(size_t len) {
    if (::posix_memalign(&p, kAlign, std::max<size_t>(len, kAlign)) != 0) p = nullptr;
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  char* data() const { return static_cast<char*>(p); }
  void* p = nullptr;
};

// Kills the affinityfs daemon of `mountpoint` if one operation takes longer
// than the limit: the stuck syscall then fails (ENOTCONN) and the test
// reports which operation hung instead of sitting until the ctest timeout.
// Only a child of this process with that mount point is ever signalled.
class Watchdog {
 public:
  Watchdog(std::string mountpoint, std::chrono::seconds limit) : mountpoint_(std::move(mountpoint)), limit_(limit) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Begin(const std::string& what) {
    std::lock_guard<std::mutex> l(mu_);
    what_ = what;
    started_ = std::chrono::steady_clock::now();
    armed_ = true;
  }
  void End() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
  }
  // Non-empty once the watchdog fired: what was stuck.
  std::string fired() {
    std::lock_guard<std::mutex> l(mu_);
    return fired_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!quit_) {
      cv_.wait_for(l, std::chrono::seconds(1));
      if (quit_ || !armed_ || std::chrono::steady_clock::now() - started_ < limit_) continue;
      fired_ = what_;
      armed_ = false;
      KillDaemon();
    }
  }
  void KillDaemon() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string pid = entry.path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      size_t close_paren = line.rfind(')');
      if (close_paren == std::string::npos) continue;
      std::istringstream rest(line.substr(close_paren + 2));
      char state = 0;
      pid_t ppid = 0;
      rest >> state >> ppid;
      if (ppid != ::getpid()) continue;
      std::ifstream cmd(entry.path() / "cmdline");
      std::string argv0, argv1;
      std::getline(cmd, argv0, '\0');
      std::getline(cmd, argv1, '\0');
      if (argv0.ends_with("/affinityfs") && argv1 == mountpoint_) ::kill(std::stoi(pid), SIGKILL);
    }
  }

  std::string mountpoint_;
  std::chrono::seconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false, armed_ = false;
  std::string what_, fired_;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

struct Variant {
  const char* name;
  uint64_t chunk_size;
  std::vector<std::string> extra_args;
  uint64_t ops;
  bool small_cache;
};

class WriteModelTest : public ReadPathTest {
 protected:
  struct Image {
    std::string name;
    std::string model;
    int rw = -1, direct = -1, ro = -1;
  };
  enum Heavy { kRemount, kKill9, kKill9InFlight, kOutage, kHeavyKinds };

  void RunFsx(const Variant& v);

  // --- helpers (each may fail fatally; the loop checks HasFatalFailure) ---
  uint64_t Rand(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_); }
  bool Chance(unsigned percent) { return Rand(0, 99) < percent; }
  static std::string RandomBytes(std::mt19937_64& rng, size_t len);
  std::string Ctx();
  void Note(const std::string& what);
  void OpenAll();
  void CloseAll();
  // Also called by the writer thread: uses only `rng` and constant members.
  void PickRange(const Image& img, uint64_t max_len, uint64_t* off, uint64_t* len, std::mt19937_64& rng) const;

  void OpWrite(Image& img, bool direct);
  void OpWriteAtEof(Image& img);
  void OpRead(Image& img, bool direct);
  void OpSync(Image& img, bool data_only);
  void OpReopen(Image& img);
  void Remount();
  void Kill9Restart();
  void Kill9WithWriteInFlight();
  void StorageOutage();
  void Final();

  void CheckStorage(const Image& img, const std::string& when);
  // Reads the whole image through the mount; bytes in [skip_off, skip_off +
  // new_bytes.size()) may hold the model's bytes or new_bytes, and the model
  // takes what was read there.
  void CheckMount(Image& img, const std::string& when, uint64_t skip_off = 0, const std::string& new_bytes = {});
  std::string MismatchReport(const Image& img, uint64_t off, const std::string& got, const char* source);

  Variant variant_;
  uint64_t chunk_ = 0;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::vector<Image> images_;
  std::vector<std::string> args_;
  std::string grant_;
  std::unique_ptr<AffinityfsMount> mount_;
  std::unique_ptr<Watchdog> watchdog_;
  uint64_t op_ = 0;
  std::deque<std::string> history_;
  bool verbose_ = false;
  std::map<std::string, uint64_t> counts_;
  int heavy_done_[kHeavyKinds] = {};
};

std::string WriteModelTest::RandomBytes(std::mt19937_64& rng, size_t len) {
  std::string s(len, '\0');
  // Some writes are all zeros: a cache that treats zeros as holes must still
  // store them (the old bytes are not zero).
  if (std::uniform_int_distribution<int>(0, 19)(rng) == 0) return s;
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = rng();
    std::memcpy(s.data() + i, &w, std::min<size_t>(8, len - i));
  }
  return s;
}

std::string WriteModelTest::Ctx() {
  std::ostringstream o;
  o << "\n[fsx variant=" << variant_.name << " seed=" << seed_ << " op #" << op_ << " of " << variant_.ops
    << "; reproduce with AFFINITY_FSX_SEED=" << seed_ << " AFFINITY_FSX_OPS=" << variant_.ops
    << " --gtest_filter=*" << variant_.name << "*]\nlast operations:\n";
  for (const auto& h : history_) o << "  " << h << "\n";
  return o.str();
}

void WriteModelTest::Note(const std::string& what) {
  std::string line = "#" + std::to_string(op_) + " " + what;
  if (verbose_) std::cerr << line << std::endl;
  history_.push_back(std::move(line));
  if (history_.size() > 40) history_.pop_front();
  watchdog_->Begin(history_.back());
}

void WriteModelTest::OpenAll() {
  for (auto& img : images_) {
    const std::string path = MountPath(img.name);
    img.rw = ::open(path.c_str(), O_RDWR);
    img.direct = ::open(path.c_str(), O_RDWR | O_DIRECT);
    img.ro = ::open(path.c_str(), O_RDONLY);
    ASSERT_TRUE(img.rw >= 0 && img.direct >= 0 && img.ro >= 0)
        << "open " << path << ": " << std::strerror(errno) << Ctx();
  }
}

void WriteModelTest::CloseAll() {
  for (auto& img : images_) {
    for (int* fd : {&img.rw, &img.direct, &img.ro}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
}

void WriteModelTest::PickRange(const Image& img, uint64_t max_len, uint64_t* off, uint64_t* len,
                               std::mt19937_64& rng) const {
  auto rand = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  const uint64_t size = img.model.size();
  // Mostly small (the common VM write), some medium, some over several chunks.
  uint64_t r = rand(0, 99);
  uint64_t l;
  if (r < 45) {
    l = rand(1, 512);
  } else if (r < 70) {
    l = rand(513, 8192);
  } else if (r < 90) {
    l = rand(8193, 128 * 1024);
  } else {
    l = rand(128 * 1024, std::max<uint64_t>(max_len, 128 * 1024));
  }
  l = std::min(l, max_len);
  uint64_t o;
  r = rand(0, 99);
  if (r < 40) {
    o = rand(0, size - l);
  } else if (r < 75) {  // straddles a chunk boundary
    uint64_t boundary = rand(1, (size - 1) / chunk_) * chunk_;
    o = boundary - std::min<uint64_t>(boundary, rand(1, std::max<uint64_t>(1, l - 1)));
  } else if (r < 85) {  // chunk aligned
    o = rand(0, (size - 1) / chunk_) * chunk_;
  } else if (r < 93) {  // ends exactly at EOF (root.raw: inside its partial last chunk)
    o = size - l;
  } else {  // the first chunk (image headers live there)
    o = rand(0, chunk_);
  }
  *off = std::min(o, size - l);
  *len = l;
}

std::string WriteModelTest::MismatchReport(const Image& img, uint64_t off, const std::string& got, const char* source) {
  std::string storage = ReadWholeFile(SourcePath(img.name));
  std::ostringstream o;
  o << source << " of " << img.name << ": first mismatch at offset " << off << " (chunk " << off / chunk_ << " +"
    << off % chunk_ << "): got " << Hex(static_cast<unsigned char>(got[0])) << ", model has "
    << Hex(static_cast<unsigned char>(img.model[off]));
  if (off < storage.size()) o << ", storage copy has " << Hex(static_cast<unsigned char>(storage[off]));
  const std::string& original = img.name == "data.raw" ? data_bytes_ : root_bytes_;
  if (off < original.size()) o << ", before the test " << Hex(static_cast<unsigned char>(original[off]));
  return o.str();
}

void WriteModelTest::OpWrite(Image& img, bool direct) {
  uint64_t off, len;
  if (direct) {
    // O_DIRECT: aligned offset, length and buffer, within the image.
    len = Rand(1, 64) * kAlign;
    uint64_t last = (img.model.size() - len) / kAlign;
    off = Rand(0, last) * kAlign;
  } else {
    PickRange(img, kMaxWrite, &off, &len, rng_);
  }
  std::string bytes = RandomBytes(rng_, len);
  Note(std::string(direct ? "write-direct " : "write ") + img.name + " off=" + std::to_string(off) +
       " len=" + std::to_string(len));
  ssize_t n;
  if (direct) {
    AlignedBuf buf(len);
    ASSERT_NE(buf.data(), nullptr);
    std::memcpy(buf.data(), bytes.data(), len);
    n = PwriteAll(img.direct, buf.data(), len, static_cast<off_t>(off));
  } else {
    n = PwriteAll(img.rw, bytes.data(), len, static_cast<off_t>(off));
  }
  ASSERT_EQ(n, static_cast<ssize_t>(len)) << "write failed: " << (n < 0 ? std::strerror(static_cast<int>(-n)) : "short")
                                          << Ctx();
  img.model.replace(off, len, bytes);
}

void WriteModelTest::OpWriteAtEof(Image& img) {
  const uint64_t size = img.model.size();
  // Past EOF, or straddling it: nothing beyond EOF may be written.
  uint64_t len = Rand(1, 20000);
  uint64_t off = Chance(50) ? size + Rand(0, 3 * chunk_) : size - std::min<uint64_t>(size, Rand(1, len));
  std::string bytes = RandomBytes(rng_, len);
  Note("write-eof " + img.name + " off=" + std::to_string(off) + " len=" + std::to_string(len));
  errno = 0;
  ssize_t n = ::pwrite(img.rw, bytes.data(), len, static_cast<off_t>(off));
  int err = errno;
  if (off >= size) {
    ASSERT_EQ(n, -1) << "a write at/after EOF (size " << size << ") succeeded" << Ctx();
    ASSERT_EQ(err, EFBIG) << std::strerror(err) << Ctx();
  } else if (n < 0) {
    ASSERT_EQ(err, EFBIG) << std::strerror(err) << Ctx();
  } else {
    // A short write up to EOF is the other allowed outcome.
    ASSERT_LE(static_cast<uint64_t>(n), size - off) << "wrote past EOF" << Ctx();
    img.model.replace(off, static_cast<size_t>(n), bytes.substr(0, static_cast<size_t>(n)));
  }
  struct stat st {};
  ASSERT_EQ(::fstat(img.rw, &st), 0) << std::strerror(errno) << Ctx();
  ASSERT_EQ(static_cast<uint64_t>(st.st_size), size) << "the image size changed" << Ctx();
}

void WriteModelTest::OpRead(Image& img, bool direct) {
  const uint64_t size = img.model.size();
  uint64_t off, len;
  if (direct) {
    len = Rand(1, 64) * kAlign;
    off = Rand(0, (size - 1) / kAlign) * kAlign;  // may run past EOF: a short read
  } else if (Chance(5)) {
    len = Rand(1, 3 * chunk_);
    off = size - std::min<uint64_t>(size, Rand(0, len));  // across or at EOF
  } else {
    PickRange(img, kMaxRead, &off, &len, rng_);
  }
  int fd = direct ? img.direct : (Chance(50) ? img.ro : img.rw);
  Note(std::string(direct ? "read-direct " : "read ") + img.name + " off=" + std::to_string(off) +
       " len=" + std::to_string(len));
  AlignedBuf buf(len);
  ASSERT_NE(buf.data(), nullptr);
  ssize_t n = PreadAll(fd, buf.data(), len, static_cast<off_t>(off));
  const uint64_t want = off >= size ? 0 : std::min(len, size - off);
  ASSERT_EQ(n, static_cast<ssize_t>(want)) << "pread returned " << (n < 0 ? std::strerror(static_cast<int>(-n)) : "")
                                           << Ctx();
  int64_t bad = FirstMismatch(buf.data(), img.model.data() + off, want);
  ASSERT_EQ(bad, -1) << MismatchReport(img, off + static_cast<uint64_t>(bad),
                                       std::string(buf.data() + std::max<int64_t>(bad, 0), 1), "pread")
                     << Ctx();
}

void WriteModelTest::CheckStorage(const Image& img, const std::string& when) {
  std::string storage = ReadWholeFile(SourcePath(img.name));
  ASSERT_EQ(storage.size(), img.model.size()) << "storage copy of " << img.name << " " << when << Ctx();
  int64_t bad = FirstMismatch(storage.data(), img.model.data(), storage.size());
  if (bad < 0) return;
  FAIL() << "storage copy " << when << ": "
         << MismatchReport(img, static_cast<uint64_t>(bad), storage.substr(static_cast<size_t>(bad), 1), "storage copy")
         << Ctx();
}

void WriteModelTest::CheckMount(Image& img, const std::string& when, uint64_t skip_off, const std::string& new_bytes) {
  int fd = ::open(MountPath(img.name).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno) << Ctx();
  std::string got(img.model.size(), '\0');
  ssize_t n = PreadAll(fd, got.data(), got.size(), 0);
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(got.size())) << "reading " << img.name << " " << when << ": "
                                                 << (n < 0 ? std::strerror(static_cast<int>(-n)) : "short") << Ctx();
  const uint64_t skip_end = skip_off + new_bytes.size();
  for (uint64_t i = 0; i < got.size(); ++i) {
    if (got[i] == img.model[i]) continue;
    if (i >= skip_off && i < skip_end && got[i] == new_bytes[i - skip_off]) continue;
    FAIL() << "mount " << when << ": " << MismatchReport(img, i, got.substr(i, 1), "read")
           << (i >= skip_off && i < skip_end ? " (inside the in-flight write, neither old nor new)" : "") << Ctx();
  }
  // The in-flight write's range is what it is now; from here on it is acknowledged state.
  if (!new_bytes.empty()) img.model.replace(skip_off, new_bytes.size(), got.substr(skip_off, new_bytes.size()));
}

void WriteModelTest::OpSync(Image& img, bool data_only) {
  int fd = Chance(70) ? img.rw : img.direct;
  Note(std::string(data_only ? "fdatasync " : "fsync ") + img.name);
  int rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
  ASSERT_EQ(rc, 0) << (data_only ? "fdatasync: " : "fsync: ") << std::strerror(errno) << Ctx();
  // Durable on the storage host: every earlier write is in its copy.
  CheckStorage(img, "after fsync");
}

void WriteModelTest::OpReopen(Image& img) {
  Note("reopen " + img.name);
  int* fds[] = {&img.rw, &img.direct, &img.ro};
  int which = static_cast<int>(Rand(0, 3));  // 3: all of them
  const std::string path = MountPath(img.name);
  for (int i = 0; i < 3; ++i) {
    if (which != 3 && which != i) continue;
    ASSERT_EQ(::close(*fds[i]), 0) << std::strerror(errno) << Ctx();
    *fds[i] = ::open(path.c_str(), i == 0 ? O_RDWR : i == 1 ? O_RDWR | O_DIRECT : O_RDONLY);
    ASSERT_GE(*fds[i], 0) << std::strerror(errno) << Ctx();
  }
}

void WriteModelTest::Remount() {
  Note("remount (clean unmount, then mount again)");
  CloseAll();
  mount_->Unmount();
  if (HasFailure()) FAIL() << "the clean unmount failed" << Ctx();
  // A clean unmount writes back everything dirty before the daemon exits.
  for (auto& img : images_) CheckStorage(img, "after a clean unmount");
  if (HasFatalFailure()) return;
  mount_ = MakeMount(args_, grant_);
  mount_->Start();
  if (HasFatalFailure()) FAIL() << "the remount failed" << Ctx();
  OpenAll();
}

void WriteModelTest::Kill9Restart() {
  Note("kill -9 the daemon (idle), restart");
  CloseAll();
  mount_->Kill9();
  mount_->Start();
  if (HasFatalFailure()) FAIL() << "the restart after kill -9 failed" << Ctx();
  for (auto& img : images_) {
    CheckMount(img, "after kill -9 and restart");
    if (HasFatalFailure()) return;
  }
  OpenAll();
}

void WriteModelTest::Kill9WithWriteInFlight() {
  struct InFlight {
    size_t image = 0;
    uint64_t off = 0;
    std::string bytes;
    bool active = false;
  };
  std::mutex mu;
  InFlight inflight;
  std::atomic<uint64_t> completed{0};
  std::atomic<bool> done{false};
  std::string writer_error;
  bool writer_exited = false;  // under mu: the writer stopped on its own (before the kill)
  const uint64_t kill_after = Rand(1, 30);
  const uint64_t extra_delay_us = Rand(0, 3000);
  std::mt19937_64 wrng(seed_ ^ (op_ * 0x9e3779b97f4a7c15ull));
  Note("kill -9 the daemon with a writer thread running (after " + std::to_string(kill_after) + " writes + " +
       std::to_string(extra_delay_us) + " us), restart");

  std::vector<int> fds, direct_fds;
  for (auto& img : images_) {
    fds.push_back(::open(MountPath(img.name).c_str(), O_RDWR));
    direct_fds.push_back(::open(MountPath(img.name).c_str(), O_RDWR | O_DIRECT));
    ASSERT_GE(fds.back(), 0) << Ctx();
    ASSERT_GE(direct_fds.back(), 0) << Ctx();
  }
  CloseAll();
  std::thread writer([&] {
    AlignedBuf buf(kMaxWrite);
    while (!done.load()) {
      size_t i = std::uniform_int_distribution<size_t>(0, images_.size() - 1)(wrng);
      bool direct = std::uniform_int_distribution<int>(0, 3)(wrng) == 0;
      uint64_t off, len;
      std::string bytes;
      {
        std::lock_guard<std::mutex> l(mu);
        const uint64_t size = images_[i].model.size();
        if (direct) {
          len = std::uniform_int_distribution<uint64_t>(1, 64)(wrng) * kAlign;
          off = std::uniform_int_distribution<uint64_t>(0, (size - len) / kAlign)(wrng) * kAlign;
        } else {
          PickRange(images_[i], kMaxWrite, &off, &len, wrng);
        }
        bytes = RandomBytes(wrng, len);
        inflight = {i, off, bytes, true};
      }
      std::memcpy(buf.data(), bytes.data(), len);
      ssize_t n = PwriteAll(direct ? direct_fds[i] : fds[i], buf.data(), len, static_cast<off_t>(off));
      std::lock_guard<std::mutex> l(mu);
      // Acknowledged bytes (a short write's prefix too) are in the model from now on.
      const size_t acked = n > 0 ? static_cast<size_t>(n) : 0;
      images_[i].model.replace(off, acked, bytes.substr(0, acked));
      if (acked == len) {
        inflight.active = false;
        completed.fetch_add(1);
        continue;
      }
      inflight.off += acked;
      inflight.bytes.erase(0, acked);
      writer_error = n < 0 ? std::strerror(static_cast<int>(-n)) : "short write";
      writer_exited = true;
      return;  // the daemon is gone
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kSanitized ? 60 : 20);
  while (completed.load() < kill_after && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (writer_exited) break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::microseconds(extra_delay_us));
  bool failed_before_kill;
  {
    std::lock_guard<std::mutex> l(mu);
    failed_before_kill = writer_exited;
  }
  mount_->Kill9();
  done.store(true);
  writer.join();
  for (int fd : fds) ::close(fd);
  for (int fd : direct_fds) ::close(fd);
  // Every write must succeed while the daemon runs.
  ASSERT_FALSE(failed_before_kill) << "a write failed before the kill (" << writer_error << ") at "
                                   << images_[inflight.image].name << " off=" << inflight.off << Ctx();
  ASSERT_GE(completed.load(), 1u) << "the writer made no progress before the kill" << Ctx();
  Note("  killed after " + std::to_string(completed.load()) + " completed writes; in flight: " +
       (inflight.active ? images_[inflight.image].name + " off=" + std::to_string(inflight.off) +
                              " len=" + std::to_string(inflight.bytes.size())
                        : std::string("none")));
  if (inflight.active) counts_["kill9-landed-mid-write"]++;
  mount_->Start();
  if (HasFatalFailure()) FAIL() << "the restart after kill -9 failed" << Ctx();
  for (size_t i = 0; i < images_.size(); ++i) {
    if (inflight.active && inflight.image == i) {
      CheckMount(images_[i], "after kill -9 with a write in flight", inflight.off, inflight.bytes);
    } else {
      CheckMount(images_[i], "after kill -9 with a write in flight");
    }
    if (HasFatalFailure()) return;
  }
  OpenAll();
}

void WriteModelTest::StorageOutage() {
  Image& img = images_[Rand(0, images_.size() - 1)];
  const uint64_t size = img.model.size();
  const uint64_t last_chunk = (size - 1) / chunk_;
  // With a 1 MiB cache, writers wait for write-back once it is full of dirty
  // data, which cannot happen while the storage host is down: start clean and
  // dirty at most 4 chunks during the outage.
  if (variant_.small_cache) {
    for (auto& i : images_) {
      Note("fsync " + i.name + " (before the outage)");
      ASSERT_EQ(::fsync(i.rw), 0) << std::strerror(errno) << Ctx();
    }
  }
  Note("storage host killed (" + img.name + ")");
  server_->Kill();
  // A write into part of an uncached chunk first fetches the chunk, which
  // cannot succeed now (docs/writes.md), so outage writes cover whole chunks
  // (root.raw's last one ends at EOF) and then land anywhere inside those,
  // which are dirty and so present. None of them needs the storage host.
  std::vector<uint64_t> dirty;
  const uint64_t runs = variant_.small_cache ? Rand(1, 2) : Rand(1, 4);
  for (uint64_t w = 0; w < runs; ++w) {
    const uint64_t n = std::min<uint64_t>(Rand(1, variant_.small_cache ? 2 : 4), last_chunk + 1);
    const uint64_t first = Rand(0, last_chunk + 1 - n);
    const uint64_t off = first * chunk_, len = std::min(n * chunk_, size - off);
    for (uint64_t c = first; c < first + n; ++c) dirty.push_back(c);
    const bool direct = len % kAlign == 0 && Chance(30);
    std::string bytes = RandomBytes(rng_, len);
    Note(std::string("  outage write") + (direct ? "-direct " : " ") + img.name + " off=" + std::to_string(off) +
         " len=" + std::to_string(len) + " (whole chunks)");
    AlignedBuf buf(len);
    ASSERT_NE(buf.data(), nullptr);
    std::memcpy(buf.data(), bytes.data(), len);
    ssize_t got = PwriteAll(direct ? img.direct : img.rw, buf.data(), len, static_cast<off_t>(off));
    // Writes are durable locally; the storage host is not needed for them.
    ASSERT_EQ(got, static_cast<ssize_t>(len)) << "write during the storage outage: "
                                              << (got < 0 ? std::strerror(static_cast<int>(-got)) : "short") << Ctx();
    img.model.replace(off, len, bytes);
  }
  for (uint64_t w = Rand(0, 12); w > 0; --w) {
    const uint64_t c = dirty[Rand(0, dirty.size() - 1)];
    const uint64_t end = std::min((c + 1) * chunk_, size);
    const uint64_t off = Rand(c * chunk_, end - 1), len = Rand(1, end - off);
    std::string bytes = RandomBytes(rng_, len);
    Note("  outage write " + img.name + " off=" + std::to_string(off) + " len=" + std::to_string(len));
    ssize_t got = PwriteAll(img.rw, bytes.data(), len, static_cast<off_t>(off));
    ASSERT_EQ(got, static_cast<ssize_t>(len)) << "write into a dirty chunk during the storage outage: "
                                              << (got < 0 ? std::strerror(static_cast<int>(-got)) : "short") << Ctx();
    img.model.replace(off, len, bytes);
  }
  // Dirty chunks are served from the cache while the storage host is down.
  for (uint64_t c : dirty) {
    const uint64_t off = c * chunk_, len = std::min(chunk_, size - off);
    Note("  outage read " + img.name + " off=" + std::to_string(off) + " len=" + std::to_string(len));
    std::string got(len, '\0');
    ssize_t n = PreadAll(img.ro, got.data(), len, static_cast<off_t>(off));
    ASSERT_EQ(n, static_cast<ssize_t>(len)) << "reading a dirty chunk during the outage: "
                                            << (n < 0 ? std::strerror(static_cast<int>(-n)) : "short") << Ctx();
    int64_t bad = FirstMismatch(got.data(), img.model.data() + off, len);
    if (bad >= 0) {
      FAIL() << MismatchReport(img, off + static_cast<uint64_t>(bad), got.substr(static_cast<size_t>(bad), 1),
                               "read during the outage")
             << Ctx();
    }
  }
  // An fsync during the outage may fail with EIO or wait for the storage
  // host; sometimes the outage outlasts --timeout (5 s), so it fails.
  const uint64_t down_ms = Chance(20) ? Rand(5500, 6500) : Rand(100, 800);
  Note("  fsync during the outage; storage host back after " + std::to_string(down_ms) + " ms");
  int rc = 0, err = 0;
  std::thread syncer([&] {
    rc = ::fsync(img.rw);
    err = errno;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(down_ms));
  server_->Start();
  syncer.join();
  if (HasFatalFailure()) FAIL() << "the storage host did not restart" << Ctx();
  if (rc != 0) {
    ASSERT_EQ(err, EIO) << "fsync during the outage: " << std::strerror(err) << Ctx();
  } else {
    CheckStorage(img, "after an fsync that waited out the outage");
    if (HasFatalFailure()) return;
  }
  counts_[rc == 0 ? "outage-fsync-waited" : "outage-fsync-eio"]++;
  Note("  fsync after the storage host is back");
  ASSERT_EQ(::fsync(img.rw), 0) << "fsync after the storage host restarted: " << std::strerror(errno) << Ctx();
  CheckStorage(img, "after the storage host restarted and an fsync");
}

void WriteModelTest::Final() {
  for (auto& img : images_) {
    Note("final fsync " + img.name);
    ASSERT_EQ(::fsync(img.rw), 0) << std::strerror(errno) << Ctx();
    CheckStorage(img, "after the final fsync");
    if (HasFatalFailure()) return;
    // Nothing is left dirty once every write is on the storage host.
    EXPECT_EQ(Xattr(MountPath(img.name), "dirty_bytes"), "0") << Ctx();
    EXPECT_EQ(Xattr(MountPath(img.name), "writeback_queue"), "0") << Ctx();
    std::cerr << "[fsx] " << img.name << ": writeback_errors=" << Xattr(MountPath(img.name), "writeback_errors")
              << std::endl;
  }
  EXPECT_EQ(Xattr(mnt_, "dirty_bytes"), "0") << "mount totals" << Ctx();
  for (auto& img : images_) CheckMount(img, "at the end");
  if (HasFatalFailure()) return;
  Note("final unmount");
  CloseAll();
  mount_->Unmount();
  for (auto& img : images_) CheckStorage(img, "after the final unmount");
}

void WriteModelTest::RunFsx(const Variant& v) {
  variant_ = v;
  seed_ = SeedFromEnvOrRandom();
  rng_.seed(seed_);
  verbose_ = EnvU64("AFFINITY_FSX_VERBOSE", 0) != 0;
  std::cerr << "[fsx] variant=" << v.name << " seed=" << seed_ << " ops=" << v.ops
            << (kSanitized ? " (sanitized build)" : "") << std::endl;
  const auto started = std::chrono::steady_clock::now();

  StartServer();
  chunk_ = v.chunk_size;
  args_ = {"--chunk-size", std::to_string(chunk_ / 1024) + "K", "--timeout", "5"};
  args_.insert(args_.end(), v.extra_args.begin(), v.extra_args.end());
  grant_ = OwnerGrantFile();
  if (HasFailure()) return;
  mount_ = MakeMount(args_, grant_);
  mount_->Start();
  if (HasFatalFailure()) return;
  watchdog_ = std::make_unique<Watchdog>(mnt_, std::chrono::seconds(kSanitized ? 180 : 60));
  images_ = {{"data.raw", data_bytes_}, {"root.raw", root_bytes_}};
  OpenAll();
  if (HasFatalFailure()) return;

  // Heavy operations are rare (each costs a restart); one of each is forced at
  // the end if the dice never picked it.
  auto run_heavy = [&](Heavy h) {
    counts_[h == kRemount ? "remount" : h == kKill9 ? "kill9" : h == kKill9InFlight ? "kill9-inflight" : "outage"]++;
    heavy_done_[h]++;
    switch (h) {
      case kRemount: Remount(); break;
      case kKill9: Kill9Restart(); break;
      case kKill9InFlight: Kill9WithWriteInFlight(); break;
      default: StorageOutage(); break;
    }
  };
  for (op_ = 1; op_ <= v.ops && !HasFatalFailure(); ++op_) {
    Image& img = images_[Chance(70) ? 0 : 1];
    uint64_t r = Rand(0, 9999);
    // Per 10000 operations: heavy ones, then the common mix.
    if (r < 25) run_heavy(kRemount);
    else if (r < 50) run_heavy(kKill9);
    else if (r < 80) run_heavy(kKill9InFlight);
    else if (r < 100) run_heavy(kOutage);
    else if (r < 3500) { counts_["write"]++; OpWrite(img, false); }
    else if (r < 4300) { counts_["write-direct"]++; OpWrite(img, true); }
    else if (r < 4400) { counts_["write-eof"]++; OpWriteAtEof(img); }
    else if (r < 7600) { counts_["read"]++; OpRead(img, false); }
    else if (r < 8600) { counts_["read-direct"]++; OpRead(img, true); }
    else if (r < 9100) { counts_["fsync"]++; OpSync(img, false); }
    else if (r < 9500) { counts_["fdatasync"]++; OpSync(img, true); }
    else { counts_["reopen"]++; OpReopen(img); }
    watchdog_->End();
  }
  for (int h = 0; h < kHeavyKinds && !HasFatalFailure(); ++h) {
    if (heavy_done_[h] == 0) run_heavy(static_cast<Heavy>(h));
    watchdog_->End();
  }
  if (!HasFatalFailure()) Final();
  watchdog_->End();
  std::string fired = watchdog_->fired();
  watchdog_.reset();
  EXPECT_EQ(fired, "") << "the watchdog killed the daemon: this operation hung" << Ctx();
  CloseAll();
  if (HasFailure()) {
    const std::string log = mount_->log();
    std::cerr << "[fsx] end of the daemon log:\n"
              << log.substr(log.size() - std::min<size_t>(log.size(), 8000)) << std::endl;
  }

  std::ostringstream summary;
  summary << "[fsx] variant=" << v.name << " seed=" << seed_ << " ops=" << std::min(op_ - 1, v.ops) << " in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
          << " ms:";
  for (const auto& [k, n] : counts_) summary << " " << k << "=" << n;
  std::cerr << summary.str() << std::endl;
}

TEST_F(WriteModelTest, RandomOpsDefaultCache) {
  RunFsx({"DefaultCache", 64 * 1024, {}, DefaultOps(2500), false});
}

TEST_F(WriteModelTest, RandomOpsSmallCacheEvictsAndWaitsForWriteBack) {
  // 1 MiB of cache (the least the daemon takes: 64 chunks of 16 KiB) over
  // 11 MiB of images: eviction runs all the time and writers wait for
  // write-back, which starts almost at once.
  RunFsx({"SmallCache", 16 * 1024, {"--cache-size", "1M", "--writeback-delay", "0.02"}, DefaultOps(1500), true});
}

}  // namespace
}  // namespace affinity::testing
