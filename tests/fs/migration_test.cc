// The destination side of the migration handshake, with the real mount:
// abort purges every byte fetched under the migration and refuses reads
// until a new grant; commit invalidates exactly what the source wrote after
// the destination fetched it (cache and kernel page cache); short grants are
// renewed before they expire.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "acl/grant_token.h"
#include "tests/fs/read_path_fixture.h"
#include "tests/support/curl_test_client.h"

namespace affinity::testing {
namespace {

using Clock = std::chrono::steady_clock;

class MigrationTest : public ReadPathTest {
 protected:
  void SetUp() override {
    ReadPathTest::SetUp();
    StartServer();
    dest_fp_ = FingerprintOf(certs_.client_cert);
    source_fp_ = FingerprintOf(certs_.client2_cert);
    grant_file_ = dir_ / "dest.grant";
  }

  HttpReply Admin(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) {
    Client c(certs_, certs_.admin_cert, certs_.admin_key);
    RequestOptions o;
    o.method = method;
    if (!body.is_null()) o.body = body.dump();
    return c.Perform(server_->url() + path, o);
  }

  // The source owns vm-42; a migration to the destination begins and its
  // grant lands in grant_file_. Returns the migration id.
  std::string BeginMigration(int grant_ttl = 300) {
    EXPECT_EQ(Admin("PUT", "/v1/vms/vm-42/owner", {{"holder", source_fp_}}).status, 200);
    auto r = Admin("POST", "/v1/migrations", {{"vm", kVm}, {"to", dest_fp_}, {"grant_ttl", grant_ttl}});
    EXPECT_EQ(r.status, 200) << r.body;
    auto j = Json(r);
    WriteGrantFile(grant_file_, j["grant"].get<std::string>());
    return j["migration"]["id"].get<std::string>();
  }

  std::unique_ptr<AffinityfsMount> MountWithGrant() {
    auto m = MakeMount({"--grant-poll", "0.2", "--timeout", "5"}, grant_file_);
    m->Start();
    return m;
  }

  // Reads a whole file on the mount; returns -errno on failure.
  static int ReadFile(const std::string& path, std::string* out) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return -errno;
    struct stat st {};
    ::fstat(fd, &st);
    out->assign(static_cast<size_t>(st.st_size), '\0');
    ssize_t n = PreadAll(fd, out->data(), out->size(), 0);
    ::close(fd);
    return n < 0 ? static_cast<int>(n) : 0;
  }

  std::string SourceGrant() {
    auto r = Admin("POST", "/v1/grants", {{"holder", source_fp_}, {"vm", kVm}, {"ops", {"read", "write"}}});
    EXPECT_EQ(r.status, 200) << r.body;
    return Json(r)["grant"].get<std::string>();
  }

  // Rows of the cache index (all, or those of one migration).
  int64_t IndexRows(const std::string& migration = "") {
    sqlite3* db = nullptr;
    std::string path = cache_ + "/" + kVm + "/index.sqlite";
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return -1;
    sqlite3_stmt* st = nullptr;
    std::string sql = migration.empty() ? "SELECT count(*) FROM chunks" : "SELECT count(*) FROM chunks WHERE migration=?1";
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      if (!migration.empty()) sqlite3_bind_text(st, 1, migration.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  // Allocated bytes and non-zero bytes in the cache's data files.
  std::pair<uint64_t, uint64_t> CacheDataBytes() {
    uint64_t allocated = 0, nonzero = 0;
    for (const auto& e : std::filesystem::directory_iterator(cache_ + "/" + kVm + "/data")) {
      struct stat st {};
      ::stat(e.path().c_str(), &st);
      allocated += static_cast<uint64_t>(st.st_blocks) * 512;
      for (char c : ReadWholeFile(e.path())) nonzero += c != 0 ? 1 : 0;
    }
    return {allocated, nonzero};
  }

  std::string dest_fp_, source_fp_, grant_file_;
};

TEST_F(MigrationTest, AbortPurgesEveryByteFetchedUnderItAndReadsFailUntilANewGrant) {
  const std::string mig = BeginMigration();
  auto mount = MountWithGrant();
  std::string data;
  ASSERT_EQ(ReadFile(MountPath("data.raw"), &data), 0);
  ASSERT_TRUE(data == data_bytes_);
  int fd = ::open(MountPath("root.raw").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string part(1 << 20, '\0');
  ASSERT_EQ(PreadAll(fd, part.data(), part.size(), 2 << 20), static_cast<ssize_t>(part.size()));
  EXPECT_TRUE(part == root_bytes_.substr(2 << 20, part.size()));
  EXPECT_EQ(Xattr(mnt_, "migration"), mig);
  EXPECT_GT(CacheDataBytes().second, 0u);
  // Wait for the index writer: the rows are tagged with the migration.
  auto until = Clock::now() + std::chrono::seconds(5);
  while (IndexRows(mig) <= 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GT(IndexRows(mig), 0);

  ASSERT_EQ(Admin("POST", "/v1/migrations/" + mig + "/abort").status, 200);
  // The destination learns it by polling (0.2 s here) and refuses reads: EACCES.
  int err = 0;
  until = Clock::now() + std::chrono::seconds(5);
  do {
    std::string buf(4096, '\0');
    ssize_t n = PreadAll(fd, buf.data(), buf.size(), 2 << 20);  // cached a moment ago
    err = n < 0 ? static_cast<int>(-n) : 0;
    if (err == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (err == 0 && Clock::now() < until);
  EXPECT_EQ(err, EACCES);
  std::string again;
  EXPECT_EQ(ReadFile(MountPath("data.raw"), &again), -EACCES);
  EXPECT_EQ(Xattr(mnt_, "grant_state"), "revoked");
  EXPECT_NE(Xattr(mnt_, "grant_revoked_reason").find("aborted"), std::string::npos);
  {
    int wfd = ::open(MountPath("data.raw").c_str(), O_WRONLY);
    ASSERT_GE(wfd, 0);
    EXPECT_EQ(::pwrite(wfd, "A", 1, 0), -1) << "an aborted migration's destination never writes";
    EXPECT_EQ(errno, EROFS);
    ::close(wfd);
  }
  // Nothing fetched under the migration is left: no allocated or non-zero
  // byte in the data files, no index row.
  until = Clock::now() + std::chrono::seconds(5);
  while (Xattr(mnt_, "migration_purges") != "1" && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto [allocated, nonzero] = CacheDataBytes();
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(nonzero, 0u);
  EXPECT_EQ(IndexRows(mig), 0);
  EXPECT_EQ(IndexRows(), 0);

  // A new grant (a standing read grant at the current epoch) restores reads.
  GrantSpec fresh;
  fresh.holder_cert = certs_.client_cert;
  fresh.vm = kVm;
  fresh.epoch = Json(Admin("GET", "/v1/vms/vm-42/owner"))["epoch"].get<uint64_t>();
  WriteGrantFile(grant_file_, MintGrant(certs_, fresh));
  until = Clock::now() + std::chrono::seconds(5);
  int rc = 0;
  do {
    rc = ReadFile(MountPath("data.raw"), &again);
    if (rc != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (rc != 0 && Clock::now() < until);
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(again == data_bytes_);
  EXPECT_EQ(Xattr(mnt_, "grant_state"), "valid");
  ::close(fd);
}

TEST_F(MigrationTest, AnAbortWhileNoDaemonRanIsAppliedBeforeTheNextMountServesARead) {
  const std::string mig = BeginMigration();
  {
    auto mount = MountWithGrant();
    std::string data;
    ASSERT_EQ(ReadFile(MountPath("data.raw"), &data), 0);
    mount->Unmount();
  }
  ASSERT_GT(CacheDataBytes().first, 0u);
  ASSERT_EQ(Admin("POST", "/v1/migrations/" + mig + "/abort").status, 200);
  auto mount = MountWithGrant();  // the image list comes from the previous run: the grant is refused
  // The very first read is served only after the abort was applied (the
  // FUSE loop starts after the first grant check), so it fails...
  std::string data;
  EXPECT_EQ(ReadFile(MountPath("data.raw"), &data), -EACCES);
  EXPECT_EQ(Xattr(mnt_, "grant_state"), "revoked");
  // ...and by then nothing fetched under the migration is left.
  auto [allocated, nonzero] = CacheDataBytes();
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(nonzero, 0u);
  EXPECT_EQ(IndexRows(), 0) << mount->log();
}

TEST_F(MigrationTest, CommitInvalidatesExactlyWhatTheSourceWroteAfterThePrefetch) {
  const std::string mig = BeginMigration();
  auto mount = MountWithGrant();
  std::string before;
  ASSERT_EQ(ReadFile(MountPath("data.raw"), &before), 0);  // prefetched; now also in the kernel page cache
  ASSERT_TRUE(before == data_bytes_);
  const ServedCounters served_before = Served("data.raw");
  // Before the commit the destination does not own the images: EROFS.
  int wfd = ::open(MountPath("data.raw").c_str(), O_RDWR);
  ASSERT_GE(wfd, 0) << std::strerror(errno);
  EXPECT_EQ(::pwrite(wfd, "D", 1, 10), -1);
  EXPECT_EQ(errno, EROFS);

  // The source keeps running and writes after the destination fetched.
  const uint64_t at = 300000;
  const std::string written(4096, 'W');
  {
    Client source(certs_, certs_.client2_cert, certs_.client2_key);
    RequestOptions o;
    o.method = "PUT";
    o.body = written;
    o.headers = {"Authorization: Bearer " + SourceGrant(),
                 "Content-Range: bytes " + std::to_string(at) + "-" + std::to_string(at + written.size() - 1) + "/*"};
    auto put = source.Perform(server_->url() + "/v1/vms/vm-42/images/data.raw", o);
    ASSERT_EQ(put.status, 204) << put.body;
  }
  auto commit = Admin("POST", "/v1/migrations/" + mig + "/commit");
  ASSERT_EQ(commit.status, 200) << commit.body;
  ASSERT_EQ(Json(commit)["stale"].size(), 1u) << commit.body;
  // What `affinityctl migrate commit --mount` does: apply it now, synchronously.
  ASSERT_EQ(::setxattr(mnt_.c_str(), "user.affinity.control", "refresh", 7, 0), 0) << std::strerror(errno);
  EXPECT_EQ(Xattr(mnt_, "migration_state"), "committed");
  EXPECT_EQ(Xattr(mnt_, "stale_ranges_invalidated"), "1");
  EXPECT_EQ(Xattr(mnt_, "grant_ops"), "read,prefetch,write") << "renewed into the owner's grant";

  std::string after;
  ASSERT_EQ(ReadFile(MountPath("data.raw"), &after), 0);
  std::string expected = data_bytes_;
  expected.replace(at, written.size(), written);
  EXPECT_TRUE(after == expected) << "a stale byte was read after commit";
  // The owner now: it writes, and fsync puts the write on the storage host.
  ASSERT_EQ(::pwrite(wfd, "D", 1, 10), 1) << std::strerror(errno);
  ASSERT_EQ(::fsync(wfd), 0) << std::strerror(errno);
  ::close(wfd);
  expected[10] = 'D';
  EXPECT_TRUE(ReadWholeFile(SourcePath("data.raw")) == expected) << "the owner's write is on the storage host";
  // Only the invalidated chunk came again, not the whole file.
  const ServedCounters served_after = Served("data.raw");
  EXPECT_GT(served_after.bytes, served_before.bytes);
  EXPECT_LE(served_after.bytes - served_before.bytes, 2u * 256 * 1024);
  // An unknown control value is refused clearly.
  EXPECT_NE(::setxattr(mnt_.c_str(), "user.affinity.control", "explode", 7, 0), 0);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(MigrationTest, ShortLivedGrantsAreRenewedBeforeTheyExpire) {
  BeginMigration(/*grant_ttl=*/6);
  const auto first = acl::DecodeGrant(ReadWholeFile(grant_file_).substr(0, ReadWholeFile(grant_file_).size() - 1));
  ASSERT_TRUE(first.ok());
  auto mount = MountWithGrant();
  auto until = Clock::now() + std::chrono::seconds(15);
  while (Xattr(mnt_, "grant_renewals") == "0" && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(Xattr(mnt_, "grant_renewals"), "0");
  std::string text = ReadWholeFile(grant_file_);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  auto renewed = acl::DecodeGrant(text);
  ASSERT_TRUE(renewed.ok()) << "the renewed grant is written back to --grant";
  EXPECT_EQ(renewed->claims.grant_id, first->claims.grant_id);
  EXPECT_GT(renewed->claims.expires, first->claims.expires);
  std::string data;
  EXPECT_EQ(ReadFile(MountPath("data.raw"), &data), 0);
  EXPECT_TRUE(data == data_bytes_);
}

}  // namespace
}  // namespace affinity::testing
