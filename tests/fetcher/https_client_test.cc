// HttpsClient against the real affinity-storaged (tests/support/test_env.h):
// real certificates, real mutual TLS, real faults injected by the server's
// --test-fault / --test-delay-ms switches. Waits are futures or bounded
// polls, never sleeps; ordering tests assert on completion order, not time.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "fetcher/https_client.h"
#include "tests/support/test_env.h"

namespace affinity::fetcher {
namespace {

using namespace std::chrono_literals;
using testing::Certs;
using testing::StoragedOptions;
using testing::StoragedProcess;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kImageSize = 4 << 20;
const char kImagePath[] = "/v1/vms/vm/images/disk.raw";

// Collects outcomes of Submit() calls by name, in completion order.
class Completions {
 public:
  Callback For(std::string name) {
    auto p = std::make_shared<std::promise<void>>();
    futures_.push_back(p->get_future());
    return [this, p, name = std::move(name)](FetchOutcome o) {
      {
        std::lock_guard lock(mu_);
        order_.push_back(name);
        calls_[name]++;
        outcomes_.emplace(name, std::move(o));
      }
      p->set_value();  // a second call would throw: "exactly once" is checked here too
    };
  }
  void WaitAll() {
    for (auto& f : futures_) ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  }
  std::vector<std::string> order() {
    std::lock_guard lock(mu_);
    return order_;
  }
  const FetchOutcome& outcome(const std::string& name) { return outcomes_.at(name); }
  int calls(const std::string& name) {
    std::lock_guard lock(mu_);
    return calls_[name];
  }

 private:
  std::mutex mu_;
  std::vector<std::string> order_;
  std::map<std::string, int> calls_;
  std::map<std::string, FetchOutcome> outcomes_;
  std::vector<std::future<void>> futures_;
};

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = testing::GenerateCerts(dir_ / "certs");
    ASSERT_EQ(::mkdir((dir_ / "root").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "root/vm").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "state").c_str(), 0755), 0);
    testing::WriteRandomFile(dir_ / "root/vm/disk.raw", kImageSize, 5);
    bytes_ = testing::ReadWholeFile(dir_ / "root/vm/disk.raw");
    ASSERT_EQ(bytes_.size(), kImageSize);
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

  ClientConfig Config(int max_connections = 8, int reserved = 2) {
    ClientConfig c;
    c.base_url = server_->url();
    c.ca_file = certs_.ca_cert;
    c.cert_file = certs_.client_cert;
    c.key_file = certs_.client_key;
    c.max_connections = max_connections;
    c.reserved_demand_connections = reserved;
    testing::GrantSpec g;
    g.holder_cert = certs_.client_cert;
    g.vm = "vm";
    c.authorization = [token = testing::MintGrant(certs_, g)] { return "Bearer " + token; };
    c.initial_backoff = 10ms;
    c.max_backoff = 100ms;
    return c;
  }

  std::unique_ptr<HttpsClient> MakeClient(ClientConfig c) {
    auto client = HttpsClient::Create(c);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    if (!client.ok()) return nullptr;
    return std::move(client).value();
  }
  std::unique_ptr<HttpsClient> MakeClient(int max_connections = 8, int reserved = 2) {
    return MakeClient(Config(max_connections, reserved));
  }

  static Request Range(uint64_t off, uint64_t len, Priority p = Priority::kDemand, std::chrono::milliseconds within = 20s) {
    Request r;
    r.path = kImagePath;
    r.range = ByteRange{off, len};
    r.priority = p;
    r.deadline = Clock::now() + within;
    return r;
  }

  bool SameBytes(const FetchOutcome& o, uint64_t off, uint64_t len) const {
    return o.response.body.size() == len && std::memcmp(o.response.body.data(), bytes_.data() + off, len) == 0;
  }

  // {"requests":N,"bytes":M} the server counted for our image (asked with
  // an admin certificate: metrics are a control-plane endpoint).
  std::pair<uint64_t, uint64_t> ServerCounters() {
    ClientConfig c = Config();
    c.cert_file = certs_.admin_cert;
    c.key_file = certs_.admin_key;
    auto admin = MakeClient(c);
    if (admin == nullptr) return {0, 0};
    Request r;
    r.path = "/v1/metrics";
    r.deadline = Clock::now() + 10s;
    FetchOutcome o = admin->Fetch(r);
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    auto doc = nlohmann::json::parse(o.response.body.begin(), o.response.body.end(), nullptr, false);
    if (!doc.is_object() || !doc["images"].contains("vm/disk.raw")) return {0, 0};
    return {doc["images"]["vm/disk.raw"]["requests"].get<uint64_t>(), doc["images"]["vm/disk.raw"]["bytes"].get<uint64_t>()};
  }

  TempDir dir_;
  Certs certs_;
  std::string bytes_;
  std::unique_ptr<StoragedProcess> server_;
};

TEST_F(HttpsClientTest, RangesAreByteExact) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  const std::pair<uint64_t, uint64_t> ranges[] = {{0, 1}, {0, 4096}, {12345, 678}, {1 << 20, 1 << 20},
                                                  {kImageSize - 10, 10}, {0, kImageSize}};
  for (auto [off, len] : ranges) {
    FetchOutcome o = client->Fetch(Range(off, len));
    ASSERT_TRUE(o.status.ok()) << off << "+" << len << ": " << o.status.ToString();
    EXPECT_EQ(o.response.http_status, 206);
    EXPECT_EQ(o.response.attempts, 1);
    EXPECT_EQ(o.response.content_range, (ByteRange{off, len}));
    EXPECT_EQ(o.response.content_type, "application/octet-stream");
    EXPECT_TRUE(SameBytes(o, off, len)) << off << "+" << len;
  }
}

TEST_F(HttpsClientTest, RangePastTheEndIsClampedByTheServerAndAccepted) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(kImageSize - 100, 4096));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.response.content_range, (ByteRange{kImageSize - 100, 100}));
  EXPECT_TRUE(SameBytes(o, kImageSize - 100, 100));
}

TEST_F(HttpsClientTest, WholeObjectWithoutRange) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  Request r;
  r.path = kImagePath;
  r.deadline = Clock::now() + 20s;
  FetchOutcome o = client->Fetch(r);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.response.http_status, 200);
  EXPECT_FALSE(o.response.content_range.has_value());
  EXPECT_TRUE(SameBytes(o, 0, kImageSize));
}

TEST_F(HttpsClientTest, ManyConcurrentRangesAreByteExactOverReusedConnections) {
  StartServer();
  auto client = MakeClient(/*max_connections=*/4, /*reserved=*/1);
  ASSERT_NE(client, nullptr);
  constexpr int kN = 64;
  std::vector<std::future<FetchOutcome>> results;
  for (int i = 0; i < kN; ++i) {
    auto p = std::make_shared<std::promise<FetchOutcome>>();
    results.push_back(p->get_future());
    Priority prio = i % 3 == 0 ? Priority::kDemand : Priority::kBackground;
    client->Submit(Range(static_cast<uint64_t>(i) * 65536 + 17, 50000, prio),
                   [p](FetchOutcome o) { p->set_value(std::move(o)); });
  }
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(results[i].wait_for(60s), std::future_status::ready);
    FetchOutcome o = results[i].get();
    ASSERT_TRUE(o.status.ok()) << i << ": " << o.status.ToString();
    EXPECT_TRUE(SameBytes(o, static_cast<uint64_t>(i) * 65536 + 17, 50000)) << i;
  }
  ClientStats s = client->Stats();
  EXPECT_EQ(s.requests_started, static_cast<uint64_t>(kN));
  EXPECT_EQ(s.requests_failed, 0u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.bytes_received, static_cast<uint64_t>(kN) * 50000);
  EXPECT_EQ(s.running + s.queued_demand + s.queued_prefetch + s.backing_off, 0u);
  EXPECT_GE(s.connections_opened, 1u);
  EXPECT_LE(s.connections_opened, 4u) << "64 requests over at most 4 kept-alive connections";
  EXPECT_EQ(ServerCounters(), (std::pair<uint64_t, uint64_t>{kN, uint64_t{kN} * 50000}));
}

TEST_F(HttpsClientTest, SequentialRequestsShareOneConnection) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(client->Fetch(Range(i * 100, 100)).status.ok());
  EXPECT_EQ(client->Stats().connections_opened, 1u);
}

TEST_F(HttpsClientTest, DemandOvertakesQueuedPrefetches) {
  StartServer({"--test-delay-ms", "50"});
  auto client = MakeClient(/*max_connections=*/2, /*reserved=*/1);
  ASSERT_NE(client, nullptr);
  Completions done;
  for (int i = 0; i < 10; ++i) {
    client->Submit(Range(i * 4096, 4096, Priority::kBackground), done.For("bg" + std::to_string(i)));
  }
  client->Submit(Range(0, 4096, Priority::kDemand), done.For("demand"));
  done.WaitAll();
  std::vector<std::string> order = done.order();
  for (const auto& name : order) EXPECT_TRUE(done.outcome(name).status.ok()) << name;
  auto demand_pos = std::find(order.begin(), order.end(), "demand") - order.begin();
  // Prefetch may hold one connection; the demand read takes the reserved one at
  // once instead of waiting behind nine queued prefetches.
  EXPECT_LE(demand_pos, 2) << "demand finished after " << demand_pos << " background requests";
  // With one prefetch slot the background requests run one at a time, FIFO.
  order.erase(order.begin() + demand_pos);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(order[i], "bg" + std::to_string(i));
}

TEST_F(HttpsClientTest, CorruptReplyIsRetriedThenSucceeds) {
  StartServer({"--test-fault", "corrupt-body:1"});
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(100, 1000));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.response.attempts, 2);
  EXPECT_TRUE(SameBytes(o, 100, 1000));
  EXPECT_EQ(client->Stats().retries, 1u);
  EXPECT_EQ(client->Stats().bytes_received, 1000u) << "the corrupt body is not counted";
}

TEST_F(HttpsClientTest, ANonIdempotentRequestIsSentOnceEvenWhenARetryWouldHelp) {
  StartServer({"--test-fault", "corrupt-body:1"});
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  Request once = Range(100, 1000);
  once.idempotent = false;
  FetchOutcome o = client->Fetch(once);
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.failure.error, FetchError::kDigestMismatch);
  EXPECT_EQ(o.failure.attempts, 1);
  EXPECT_EQ(client->Stats().retries, 0u);
  EXPECT_TRUE(client->Fetch(Range(100, 1000)).status.ok()) << "the fault was used up by the one attempt";
}

TEST_F(HttpsClientTest, AlwaysCorruptRepliesEndAsCorruption) {
  StartServer({"--test-fault", "corrupt-body:1000"});
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(0, 1000, Priority::kDemand, 500ms));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), StatusCode::kCorruption) << o.status.ToString();
  EXPECT_EQ(o.failure.error, FetchError::kDeadline);
  EXPECT_GT(o.failure.attempts, 1);
  EXPECT_NE(o.status.message().find("gave up after " + std::to_string(o.failure.attempts) + " attempts"),
            std::string::npos)
      << o.status.ToString();
  EXPECT_NE(o.status.message().find("Content-Digest mismatch"), std::string::npos) << o.status.ToString();
  EXPECT_EQ(client->Stats().bytes_received, 0u);
}

TEST_F(HttpsClientTest, ServerDownTimesOutWithTheRootCauseThenRecoversOnTheSamePort) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Fetch(Range(0, 10)).status.ok());
  server_->Kill();
  const auto start = Clock::now();
  FetchOutcome o = client->Fetch(Range(0, 10, Priority::kDemand, 700ms));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), StatusCode::kTimeout) << o.status.ToString();
  EXPECT_EQ(o.failure.error, FetchError::kDeadline);
  EXPECT_GT(o.failure.attempts, 1);
  const std::string& m = o.status.message();
  EXPECT_NE(m.find("gave up after"), std::string::npos) << m;
  EXPECT_NE(m.find("first: "), std::string::npos) << m;
  EXPECT_NE(m.find("last: "), std::string::npos) << m;
  EXPECT_NE(m.find("Connection refused"), std::string::npos) << m;
  EXPECT_LT(Clock::now() - start, 5s) << "the deadline bounds the wait";

  server_->Start();  // the same port
  FetchOutcome again = client->Fetch(Range(0, 10));
  EXPECT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_TRUE(SameBytes(again, 0, 10));
}

TEST_F(HttpsClientTest, SlowServerAttemptsTimeOutAndAreRetriedUntilTheDeadline) {
  StartServer({"--test-delay-ms", "1000"});
  ClientConfig c = Config();
  c.attempt_timeout = 150ms;
  auto client = MakeClient(c);
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(0, 10, Priority::kDemand, 800ms));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(o.failure.error, FetchError::kDeadline);
  EXPECT_GT(o.failure.attempts, 1) << o.status.ToString();
  EXPECT_NE(o.status.message().find("timed out"), std::string::npos) << o.status.ToString();
}

TEST_F(HttpsClientTest, UntrustedServerCertificateFailsAtOnce) {
  StartServer({}, /*other_ca=*/true);
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(0, 10));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.failure.error, FetchError::kTlsUntrusted) << o.status.ToString();
  EXPECT_EQ(o.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(o.failure.attempts, 1) << "a TLS trust failure must not be retried";
  EXPECT_NE(o.status.message().find("not trusted by --ca-file " + certs_.ca_cert), std::string::npos)
      << o.status.ToString();
}

TEST_F(HttpsClientTest, ClientCertificateFromAnotherCaIsRefusedByTheServer) {
  StartServer();
  ClientConfig c = Config();
  c.cert_file = certs_.other_client_cert;
  c.key_file = certs_.other_client_key;
  auto client = MakeClient(c);
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(0, 10));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.failure.error, FetchError::kTlsHandshake) << o.status.ToString();
  EXPECT_EQ(o.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(o.failure.attempts, 1) << "a refused client certificate must not be retried";
  EXPECT_NE(o.status.message().find("client certificate"), std::string::npos) << o.status.ToString();
}

TEST_F(HttpsClientTest, NotFoundCarriesTheServersReason) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  Request r = Range(0, 10);
  r.path = "/v1/vms/vm/images/missing.raw";
  FetchOutcome o = client->Fetch(r);
  EXPECT_EQ(o.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(o.failure.error, FetchError::kClientError);
  EXPECT_EQ(o.failure.http_status, 404);
  EXPECT_EQ(o.failure.attempts, 1);
  EXPECT_NE(o.status.message().find("HTTP 404 not_found"), std::string::npos) << o.status.ToString();
  EXPECT_NE(o.status.message().find("missing.raw"), std::string::npos) << o.status.ToString();
}

TEST_F(HttpsClientTest, RangeStartingPastTheEndIsOutOfRange) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  FetchOutcome o = client->Fetch(Range(kImageSize, 10));
  EXPECT_EQ(o.status.code(), StatusCode::kOutOfRange) << o.status.ToString();
  EXPECT_EQ(o.failure.http_status, 416);
  EXPECT_EQ(o.failure.attempts, 1);
}

TEST_F(HttpsClientTest, QueuedRequestExpiresWithoutWaitingForTheRunningOne) {
  StartServer({"--test-delay-ms", "1000"});
  auto client = MakeClient(/*max_connections=*/1, /*reserved=*/0);
  ASSERT_NE(client, nullptr);
  Completions done;
  client->Submit(Range(0, 10, Priority::kDemand, 20s), done.For("slow"));
  client->Submit(Range(0, 10, Priority::kDemand, 100ms), done.For("impatient"));
  done.WaitAll();
  EXPECT_EQ(done.order(), (std::vector<std::string>{"impatient", "slow"}));
  const FetchOutcome& o = done.outcome("impatient");
  EXPECT_EQ(o.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(o.failure.error, FetchError::kDeadline);
  EXPECT_EQ(o.failure.attempts, 0);
  EXPECT_NE(o.status.message().find("before the request could start"), std::string::npos) << o.status.ToString();
  EXPECT_TRUE(done.outcome("slow").status.ok()) << done.outcome("slow").status.ToString();
}

TEST_F(HttpsClientTest, CallbacksMaySubmitAgainButNotFetch) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  std::promise<std::vector<Status>> chain_done;
  std::vector<Status> statuses;
  std::function<void(FetchOutcome)> next;
  next = [&](FetchOutcome o) {
    statuses.push_back(o.status);
    if (statuses.size() == 1) {
      FetchOutcome nested = client->Fetch(Range(0, 10));  // would deadlock if it waited
      statuses.push_back(nested.status);
    }
    if (statuses.size() < 6) {
      client->Submit(Range(statuses.size() * 10, 10), next);
    } else {
      chain_done.set_value(statuses);
    }
  };
  client->Submit(Range(0, 10), next);
  auto f = chain_done.get_future();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  std::vector<Status> got = f.get();
  ASSERT_EQ(got.size(), 6u);
  EXPECT_TRUE(got[0].ok()) << got[0].ToString();
  EXPECT_EQ(got[1].code(), StatusCode::kInvalidArgument) << got[1].ToString();
  for (size_t i = 2; i < got.size(); ++i) EXPECT_TRUE(got[i].ok()) << i << ": " << got[i].ToString();
}

TEST_F(HttpsClientTest, InvalidRequestsFailWithoutTouchingTheNetwork) {
  StartServer();
  auto client = MakeClient();
  ASSERT_NE(client, nullptr);
  Request no_deadline = Range(0, 10);
  no_deadline.deadline = {};
  Request empty = Range(0, 0);
  Request relative = Range(0, 10);
  relative.path = "v1/metrics";
  for (const Request& r : {no_deadline, empty, relative}) {
    FetchOutcome o = client->Fetch(r);
    EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument) << o.status.ToString();
    EXPECT_EQ(o.failure.error, FetchError::kClientError);
    EXPECT_EQ(o.failure.attempts, 0);
  }
  EXPECT_EQ(client->Stats().requests_started, 0u);
}

TEST_F(HttpsClientTest, ShutdownCancelsEveryPendingRequestExactlyOnce) {
  StartServer({"--test-delay-ms", "2000"});
  auto client = MakeClient(/*max_connections=*/2, /*reserved=*/1);
  ASSERT_NE(client, nullptr);
  Completions done;
  constexpr int kN = 20;
  for (int i = 0; i < kN; ++i) {
    client->Submit(Range(i, 10, i % 2 ? Priority::kDemand : Priority::kBackground), done.For("r" + std::to_string(i)));
  }
  // Bounded poll until both connections carry a request, so running ones are cancelled too.
  const auto until = Clock::now() + 10s;
  while (client->Stats().running < 2 && Clock::now() < until) std::this_thread::yield();
  ASSERT_EQ(client->Stats().running, 2u);
  client.reset();
  done.WaitAll();
  for (int i = 0; i < kN; ++i) {
    std::string name = "r" + std::to_string(i);
    EXPECT_EQ(done.calls(name), 1) << name;
    EXPECT_EQ(done.outcome(name).status.code(), StatusCode::kCancelled) << name;
    EXPECT_EQ(done.outcome(name).failure.error, FetchError::kCancelled) << name;
  }
}

TEST(HttpsClientConfig, UnreadableFilesAndBadOptionsAreRejectedByName) {
  TempDir dir;
  const std::string file = dir / "x.pem";
  testing::WriteRandomFile(file, 10, 1);
  ClientConfig c;
  c.base_url = "https://127.0.0.1:1";
  c.ca_file = "/nonexistent/ca.pem";
  c.cert_file = c.key_file = file;
  auto client = HttpsClient::Create(c);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("CA file '/nonexistent/ca.pem'"), std::string::npos)
      << client.status().ToString();

  c.ca_file = file;
  c.key_file = dir.path();  // a directory is not a key file
  client = HttpsClient::Create(c);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("client key '" + dir.path() + "'"), std::string::npos)
      << client.status().ToString();

  c.key_file = file;
  c.base_url = "http://plain";
  EXPECT_EQ(HttpsClient::Create(c).status().code(), StatusCode::kInvalidArgument);
  c.base_url = "https://127.0.0.1:1";
  c.max_connections = 0;
  EXPECT_EQ(HttpsClient::Create(c).status().code(), StatusCode::kInvalidArgument);
  c.max_connections = 2;
  c.reserved_demand_connections = 5;
  auto ok = HttpsClient::Create(c);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->config().reserved_demand_connections, 1) << "one connection always left to prefetch";
}

}  // namespace
}  // namespace affinity::fetcher
