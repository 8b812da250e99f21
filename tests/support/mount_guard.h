// AffinityfsMount: a real affinityfs FUSE mount for a test, always unmounted.
//
// Start() runs the real daemon in the foreground (-f) as a child process and
// waits, bounded, until the mount point shows up in /proc/mounts. The
// destructor unmounts (fusermount3 -u, then -u -z lazily if busy) and kills
// the daemon if it is still alive, so a failing test never leaves a mount.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/test_env.h"

namespace affinity::testing {

struct MountOptions {
  std::string mountpoint;
  std::string storage_url;
  std::string vm;
  std::string cache_dir;
  const Certs* certs = nullptr;
  std::string ca_file;  // default: certs->ca_cert
  std::vector<std::string> extra_args;  // e.g. {"--chunk-size", "64K", "--timeout", "3"}
  // --grant; empty: a standing read grant for `vm` held by certs->client_cert
  // is minted into "<mountpoint>.grant".
  std::string grant_file;
};

bool IsMounted(const std::string& mountpoint);

class AffinityfsMount {
 public:
  explicit AffinityfsMount(MountOptions options);
  ~AffinityfsMount();
  AffinityfsMount(const AffinityfsMount&) = delete;
  AffinityfsMount& operator=(const AffinityfsMount&) = delete;

  // Mounts; fatal test failure (with the daemon's log) if it does not come up.
  void Start();
  // Runs the daemon and returns its exit status without expecting a mount
  // (for bad-option tests); `output` receives what it printed.
  int RunExpectingFailure(std::string* output, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Clean unmount; waits for the daemon to exit.
  void Unmount();
  // SIGKILL the daemon (no clean shutdown), then clear the dead mount.
  void Kill9();
  std::string log() const;
  std::string path(const std::string& image) const { return options_.mountpoint + "/" + image; }

 private:
  std::vector<std::string> Argv(bool foreground) const;
  MountOptions options_;
  Subprocess process_;
  std::string log_file_;
};

}  // namespace affinity::testing
