#include "tests/support/mount_guard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace affinity::testing {
namespace {

int RunQuiet(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// Numbered across every mount of the test process: a test that replaces its
// mount (a remount) must not append the new daemon's log to an old one's.
int NextLogNumber() {
  static std::atomic<int> next{0};
  return ++next;
}

}  // namespace

bool IsMounted(const std::string& mountpoint) {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, rest;
  while (mounts >> dev >> dir) {
    std::getline(mounts, rest);
    if (dir == mountpoint) return true;
  }
  return false;
}

AffinityfsMount::AffinityfsMount(MountOptions options) : options_(std::move(options)) {
  if (options_.grant_file.empty() && options_.certs != nullptr) {
    options_.grant_file = options_.mountpoint + ".grant";
    GrantSpec g;
    g.holder_cert = options_.certs->client_cert;
    g.vm = options_.vm;
    g.ttl_seconds = 3600;
    WriteGrantFile(options_.grant_file, MintGrant(*options_.certs, g));
  }
}

AffinityfsMount::~AffinityfsMount() {
  if (IsMounted(options_.mountpoint)) {
    if (RunQuiet("fusermount3 -u '" + options_.mountpoint + "'") != 0) {
      RunQuiet("fusermount3 -u -z '" + options_.mountpoint + "'");
    }
  }
  if (process_.running()) {
    process_.Signal(SIGTERM);
    if (process_.Wait(std::chrono::seconds(10)) < 0) process_.Signal(SIGKILL);
  }
}

std::vector<std::string> AffinityfsMount::Argv(bool foreground) const {
  std::vector<std::string> argv = {BinaryPath("affinityfs"), options_.mountpoint,
                                   "--storage", options_.storage_url,
                                   "--vm", options_.vm,
                                   "--cache-dir", options_.cache_dir,
                                   "--ca-file", options_.ca_file.empty() ? options_.certs->ca_cert : options_.ca_file,
                                   "--cert", options_.certs->client_cert,
                                   "--key", options_.certs->client_key,
                                   "--grant", options_.grant_file,
                                   "--log-level", "debug"};
  if (foreground) argv.push_back("-f");
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  return argv;
}

void AffinityfsMount::Start() {
  ASSERT_FALSE(IsMounted(options_.mountpoint)) << options_.mountpoint << " is already mounted";
  log_file_ = options_.mountpoint + ".affinityfs." + std::to_string(NextLogNumber()) + ".log";
  ASSERT_TRUE(process_.Start(Argv(true), log_file_));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!IsMounted(options_.mountpoint)) {
    if (!process_.running()) FAIL() << "affinityfs exited before mounting:\n" << log();
    if (std::chrono::steady_clock::now() > deadline) FAIL() << "affinityfs did not mount in 30 s:\n" << log();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int AffinityfsMount::RunExpectingFailure(std::string* output, std::chrono::milliseconds timeout) {
  log_file_ = options_.mountpoint + ".affinityfs.fail." + std::to_string(NextLogNumber()) + ".log";
  Subprocess p;
  if (!p.Start(Argv(false), log_file_)) return -1;
  int status = p.Wait(timeout);
  if (output != nullptr) *output = log();
  return status;
}

void AffinityfsMount::Unmount() {
  if (IsMounted(options_.mountpoint)) {
    int rc = RunQuiet("fusermount3 -u '" + options_.mountpoint + "'");
    EXPECT_EQ(rc, 0) << "fusermount3 -u failed (busy?)";
  }
  if (process_.running()) {
    int status = process_.Wait(std::chrono::seconds(30));
    EXPECT_EQ(status, 0) << "affinityfs did not exit cleanly after unmount:\n" << log();
  }
}

void AffinityfsMount::Kill9() {
  process_.Signal(SIGKILL);
  process_.Wait(std::chrono::seconds(10));
  // The kernel keeps a dead FUSE mount until it is unmounted.
  if (IsMounted(options_.mountpoint)) RunQuiet("fusermount3 -u -z '" + options_.mountpoint + "'");
}

std::string AffinityfsMount::log() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace affinity::testing
