// Shared fixture of the read-path integration tests: a real affinity-storaged
// on loopback serving ROOT/vm-42/{root.raw,data.raw} with real certificates,
// and helpers to mount the real affinityfs over it and read the server's
// counters (what was actually fetched).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/mount_guard.h"
#include "tests/support/test_env.h"

namespace affinity::testing {

struct ServedCounters {
  uint64_t requests = 0;
  uint64_t bytes = 0;
};

class ReadPathTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRootSize = (8ull << 20) + 12345;  // not chunk aligned
  static constexpr uint64_t kDataSize = 3ull << 20;
  static constexpr const char* kVm = "vm-42";

  void SetUp() override;
  void TearDown() override;

  void StartServer(std::vector<std::string> extra_args = {}, bool other_ca_cert = false);
  // `grant_file` empty: a standing read grant is minted (mount_guard.h).
  std::unique_ptr<AffinityfsMount> MakeMount(std::vector<std::string> extra_args = {}, std::string grant_file = {});
  std::unique_ptr<AffinityfsMount> Mount(std::vector<std::string> extra_args = {});
  // Makes the destination certificate (certs_.client_cert) the owner of vm-42
  // through the admin API and writes the owner's grant (read, prefetch,
  // write; one hour) to a file; returns its path. Call after StartServer.
  std::string OwnerGrantFile();
  // A mount holding the owner's grant: it may write (docs/writes.md).
  std::unique_ptr<AffinityfsMount> MountWritable(std::vector<std::string> extra_args = {});
  // Mounts a 1 MiB tmpfs on cache_ (a cache disk that fills up); unmounted
  // (lazily) when the returned guard goes. Call only as root.
  struct TmpfsGuard {
    std::string path;
    ~TmpfsGuard();
  };
  std::unique_ptr<TmpfsGuard> MountTinyCacheDisk();
  // Calls the storage host's control plane with the admin certificate;
  // returns the HTTP status and fills `body` (may be null).
  int AdminCall(const std::string& method, const std::string& path, const std::string& json, std::string* body);

  // Requests and body bytes the server sent for vm-42/<image>.
  ServedCounters Served(const std::string& image);
  std::string SourcePath(const std::string& image) const { return root_ + "/" + kVm + "/" + image; }
  std::string MountPath(const std::string& image) const { return mnt_ + "/" + image; }
  std::string Xattr(const std::string& path, const std::string& name);
  // O_DIRECT 4 KiB reads of data.raw on the mount, each checked against the
  // source: each is exactly one FUSE read (one recorded access).
  void ReadAt(const std::vector<uint64_t>& offsets);

  TempDir dir_;
  Certs certs_;
  std::string root_, state_, cache_, mnt_;
  std::string root_bytes_, data_bytes_;
  std::unique_ptr<StoragedProcess> server_;
};

// pread exactly like a VM would; returns bytes read or -errno.
ssize_t PreadAll(int fd, void* buf, size_t len, off_t off);

}  // namespace affinity::testing
