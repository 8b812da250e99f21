// Recording what the VM reads, for the profiler: every read through the
// mount reaches the storage host's profile.sqlite, in order, once; a storage
// host that is down only delays the upload, and a restarted daemon uploads
// what the previous one left on disk.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/fs/read_path_fixture.h"
#include "tests/support/curl_test_client.h"

namespace affinity::testing {
namespace {

using Clock = std::chrono::steady_clock;

class AccessRecordingTest : public ReadPathTest {
 protected:
  nlohmann::json Sessions() {
    Client admin(certs_, certs_.admin_cert, certs_.admin_key);
    auto r = admin.Get(server_->url() + "/v1/vms/vm-42/sessions");
    return r.status == 200 ? Json(r)["sessions"] : nlohmann::json::array();
  }

  uint64_t RecordsAtStorage() {
    uint64_t n = 0;
    for (const auto& s : Sessions()) n += s["records"].get<uint64_t>();
    return n;
  }

  // Waits until the storage host holds `n` records (or 10 s pass).
  bool WaitForRecords(uint64_t n) {
    auto until = Clock::now() + std::chrono::seconds(10);
    while (RecordsAtStorage() < n && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return RecordsAtStorage() == n;
  }

  // Offsets the storage host recorded for data.raw, in session then seq order.
  std::vector<uint64_t> StoredOffsets() {
    std::vector<uint64_t> out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2((state_ + "/profile.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      return out;
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db,
                           "SELECT a.offset FROM accesses a JOIN sessions s ON s.session = a.session "
                           "WHERE a.image = 'data.raw' ORDER BY s.start_ms, a.seq",
                           -1, &st, nullptr) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) out.push_back(static_cast<uint64_t>(sqlite3_column_int64(st, 0)));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

};

TEST_F(AccessRecordingTest, EveryReadReachesTheProfilerInOrderAndOnce) {
  StartServer();
  auto mount = Mount({"--upload-interval", "0.2", "--readahead", "0"});
  const std::vector<uint64_t> offsets = {0, 1 << 20, 8192, 2 << 20, 4096, 1 << 20};  // a re-read is recorded too
  ReadAt(offsets);
  ASSERT_TRUE(WaitForRecords(offsets.size())) << Sessions().dump();
  EXPECT_EQ(StoredOffsets(), offsets);
  auto sessions = Sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["holder"], FingerprintOf(certs_.client_cert));
  EXPECT_EQ(Xattr(mnt_, "accesses_recorded"), std::to_string(offsets.size()));
  EXPECT_EQ(Xattr(mnt_, "accesses_dropped"), "0");
  auto until = Clock::now() + std::chrono::seconds(5);
  while (Xattr(mnt_, "accesses_uploaded") != std::to_string(offsets.size()) && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Xattr(mnt_, "accesses_uploaded"), std::to_string(offsets.size()));
}

TEST_F(AccessRecordingTest, AStorageHostThatIsDownOnlyDelaysTheUploadAcrossRestarts) {
  StartServer();
  {
    auto mount = Mount({"--upload-interval", "3600", "--readahead", "0"});  // nothing uploads during the run
    ReadAt({0, 65536, 131072});
    server_->Kill();  // the storage host dies; cached reads go on
    ReadAt({0, 65536});
    mount->Unmount();  // the last upload attempt fails: the records stay on disk
  }
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(RecordsAtStorage(), 0u);
  // A new daemon (a new session) uploads what the old one left, then its own.
  auto mount = Mount({"--upload-interval", "0.2", "--readahead", "0"});
  ReadAt({4096});
  ASSERT_TRUE(WaitForRecords(6)) << Sessions().dump();
  EXPECT_EQ(StoredOffsets(), (std::vector<uint64_t>{0, 65536, 131072, 0, 65536, 4096}));
  EXPECT_EQ(Sessions().size(), 2u);
}

}  // namespace
}  // namespace affinity::testing
