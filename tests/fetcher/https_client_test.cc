// HttpsClient against the real affinity-storaged.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <mutex>

#include "fetcher/https_client.h"
#include "tests/support/test_env.h"

namespace affinity::fetcher {
namespace {

using namespace std::chrono_literals;
using testing::Certs;
using testing::StoragedOptions;
using testing::StoragedProcess;
using testing::TempDir;

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = testing::GenerateCerts(dir_ / "certs");
    ::mkdir((dir_ / "root").c_str(), 0755);
    ::mkdir((dir_ / "root/vm").c_str(), 0755);
    ::mkdir((dir_ / "state").c_str(), 0755);
    testing::WriteRandomFile(dir_ / "root/vm/disk.raw", 4 << 20, 5);
    bytes_ = testing::ReadWholeFile(dir_ / "root/vm/disk.raw");
  }
  void StartServer(std::vector<std::string> extra = {}, bool other_ca = false) {
    StoragedOptions o;
    o.root = dir_ / "root";
    o.state_dir = dir_ / "state";
    o.certs = &certs_;
    o.extra_args = std::move(extra);
    o.use_other_ca_server_cert = other_ca;
    server_ = std::make_unique<StoragedProcess>(o);
    server_->Start();
  }
  std::unique_ptr<HttpsClient> MakeClient(int max_connections = 8, int reserved = 2, bool stranger = false) {
    ClientConfig c;
    c.base_url = server_->url();
    c.ca_file = certs_.ca_cert;
    c.cert_file = stranger ? certs_.other_client_cert : certs_.client_cert;
    c.key_file = stranger ? certs_.other_client_key : certs_.client_key;
    c.max_connections = max_connections;
    c.reserved_demand_connections = reserved;
    c.initial_backoff = 10ms;
    c.max_backoff = 200ms;
    auto client = HttpsClient::Create(c);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return std::move(client).value();
  }
  Request Range(uint64_t off, uint64_t len, Priority p = Priority::kDemand, std::chrono::milliseconds within = 10s) {
    Request r;
    r.path = "/v1/vms/vm/images/disk.raw";
    r.range = ByteRange{off, len};
    r.priority = p;
    r.deadline = std::chrono::steady_clock::now() + within;
    return r;
  }

  TempDir dir_;
  Certs certs_;
  std::string bytes_;
  std::unique_ptr<StoragedProcess> server_;
};

TEST_F(HttpsClientTest, ManyConcurrentRangesAreByteExact) {
  StartServer();
  auto client = MakeClient();
  std::vector<std::future<FetchOutcome>> results;
  for (int i = 0; i < 64; ++i) {
    auto p = std::make_shared<std::promise<FetchOutcome>>();
    results.push_back(p->get_future());
    client->Submit(Range(static_cast<uint64_t>(i) * 65536 + 17, 50000), [p](FetchOutcome o) { p->set_value(std::move(o)); });
  }
  for (int i = 0; i < 64; ++i) {
    FetchOutcome o = results[i].get();
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ASSERT_EQ(o.response.body.size(), 50000u);
    EXPECT_EQ(0, std::memcmp(o.response.body.data(), bytes_.data() + i * 65536 + 17, 50000));
  }
  EXPECT_EQ(client->Stats().requests_started, 64u);
}

TEST_F(HttpsClientTest, DemandOvertakesQueuedPrefetches) {
  StartServer({"--test-delay-ms", "30"});
  auto client = MakeClient(/*max_connections=*/2, /*reserved=*/1);
  std::mutex mu;
  std::vector<std::string> order;
  std::vector<std::future<void>> done;
  auto submit = [&](Request r, std::string name) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    client->Submit(std::move(r), [&, p, name](FetchOutcome o) {
      EXPECT_TRUE(o.status.ok()) << o.status.ToString();
      std::lock_guard lock(mu);
      order.push_back(name);
      p->set_value();
    });
  };
  for (int i = 0; i < 10; ++i) submit(Range(i * 4096, 4096, Priority::kBackground), "bg" + std::to_string(i));
  submit(Range(0, 4096, Priority::kDemand), "demand");
  for (auto& f : done) f.get();
  auto pos = std::find(order.begin(), order.end(), "demand") - order.begin();
  // Prefetch may hold one connection; the demand read takes the reserved one at once.
  EXPECT_LE(pos, 2) << "demand finished after " << pos << " background requests";
}

TEST_F(HttpsClientTest, CorruptReplyIsRetriedThenSucceeds) {
  StartServer({"--test-fault", "corrupt-body:1"});
  auto client = MakeClient();
  FetchOutcome o = client->Fetch(Range(100, 1000));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.response.attempts, 2);
  EXPECT_EQ(0, std::memcmp(o.response.body.data(), bytes_.data() + 100, 1000));
}

TEST_F(HttpsClientTest, AlwaysCorruptRepliesEndAsCorruption) {
  StartServer({"--test-fault", "corrupt-body:100000"});
  auto client = MakeClient();
  FetchOutcome o = client->Fetch(Range(0, 1000, Priority::kDemand, 500ms));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), StatusCode::kCorruption);
  EXPECT_NE(o.status.message().find("Content-Digest mismatch"), std::string::npos) << o.status.ToString();
  EXPECT_GT(o.failure.attempts, 1);
}

TEST_F(HttpsClientTest, ServerDownTimesOutWithRootCauseThenRecovers) {
  StartServer();
  auto client = MakeClient();
  ASSERT_TRUE(client->Fetch(Range(0, 10)).status.ok());
  server_->Kill();
  FetchOutcome o = client->Fetch(Range(0, 10, Priority::kDemand, 700ms));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(o.failure.error, FetchError::kDeadline);
  EXPECT_NE(o.status.message().find("first: "), std::string::npos) << o.status.ToString();
  EXPECT_NE(o.status.message().find("onnect"), std::string::npos) << o.status.ToString();
  server_->Start();
  EXPECT_TRUE(client->Fetch(Range(0, 10)).status.ok());
}

TEST_F(HttpsClientTest, UntrustedServerCertificateFailsAtOnce) {
  StartServer({}, /*other_ca=*/true);
  auto client = MakeClient();
  FetchOutcome o = client->Fetch(Range(0, 10));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.failure.error, FetchError::kTlsUntrusted);
  EXPECT_EQ(o.failure.attempts, 1) << "a TLS trust failure must not be retried";
  EXPECT_NE(o.status.message().find(certs_.ca_cert), std::string::npos) << o.status.ToString();
}

TEST_F(HttpsClientTest, ClientCertificateFromAnotherCaIsRefusedByTheServer) {
  StartServer();
  auto client = MakeClient(8, 2, /*stranger=*/true);
  FetchOutcome o = client->Fetch(Range(0, 10, Priority::kDemand, 2s));
  ASSERT_FALSE(o.status.ok());
  EXPECT_TRUE(o.failure.error == FetchError::kTlsHandshake || o.failure.error == FetchError::kDeadline)
      << FetchErrorName(o.failure.error) << ": " << o.status.ToString();
  EXPECT_EQ(o.status.code() == StatusCode::kPermissionDenied || o.status.code() == StatusCode::kTimeout, true);
}

TEST_F(HttpsClientTest, NotFoundCarriesTheServersReason) {
  StartServer();
  auto client = MakeClient();
  Request r = Range(0, 10);
  r.path = "/v1/vms/vm/images/missing.raw";
  FetchOutcome o = client->Fetch(r);
  EXPECT_EQ(o.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(o.failure.attempts, 1);
  EXPECT_NE(o.status.message().find("missing.raw"), std::string::npos) << o.status.ToString();
}

TEST_F(HttpsClientTest, ShutdownCancelsEveryPendingRequestOnce) {
  StartServer({"--test-delay-ms", "200"});
  auto client = MakeClient(1, 0);
  std::atomic<int> cancelled{0}, calls{0};
  for (int i = 0; i < 20; ++i) {
    client->Submit(Range(0, 10, Priority::kBackground), [&](FetchOutcome o) {
      calls++;
      if (o.status.code() == StatusCode::kCancelled) cancelled++;
    });
  }
  client.reset();
  EXPECT_EQ(calls.load(), 20);
  EXPECT_GE(cancelled.load(), 19);
}

TEST(HttpsClientConfig, UnreadableFilesAreRejectedByName) {
  ClientConfig c;
  c.base_url = "https://127.0.0.1:1";
  c.ca_file = "/nonexistent/ca.pem";
  c.cert_file = c.key_file = "/etc/hostname";
  auto client = HttpsClient::Create(c);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("/nonexistent/ca.pem"), std::string::npos);
  c.ca_file = "/etc/hostname";
  c.base_url = "http://plain";
  EXPECT_EQ(HttpsClient::Create(c).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace affinity::fetcher
