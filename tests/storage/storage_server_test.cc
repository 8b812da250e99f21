// affinity-storaged over real mutual TLS, driven with libcurl's easy API
// (an independent client, not our fetcher, so the server is checked against
// what any HTTP client sees). Nothing here waits by sleeping: every wait is a
// poll with a bounded deadline or a blocking call with a timeout.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/byte_range.h"
#include "common/digest.h"
#include "common/names.h"
#include "tests/support/curl_test_client.h"
#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {



// Polls `done` until it holds or `limit` passes.
template <typename Fn>
bool Eventually(Fn done, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class StorageServerTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = (40ull << 20) + 333;  // larger than the in-memory range limit

  void SetUp() override {
    certs_ = GenerateCerts(dir_ / "certs");
    root_ = dir_ / "root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-42").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-7").c_str(), 0755), 0);
    WriteRandomFile(root_ + "/vm-42/root.raw", kSize, 1);
    WriteRandomFile(root_ + "/vm-42/data.raw", 1000, 2);
    WriteRandomFile(dir_ / "secret", 100, 3);
    ASSERT_EQ(::symlink((dir_ / "secret").c_str(), (root_ + "/vm-42/escape.raw").c_str()), 0);
    ASSERT_EQ(::symlink((root_ + "/vm-42").c_str(), (root_ + "/vm-link").c_str()), 0);
    bytes_ = ReadWholeFile(root_ + "/vm-42/root.raw");
    secret_ = ReadWholeFile(dir_ / "secret");
    StoragedOptions o;
    o.root = root_;
    o.state_dir = dir_ / "state";
    ::mkdir(o.state_dir.c_str(), 0700);
    o.certs = &certs_;
    o.extra_args = ExtraArgs();
    server_ = std::make_unique<StoragedProcess>(o);
    ASSERT_NO_FATAL_FAILURE(server_->Start());
    client_ = NewClient();
    admin_ = NewAdminClient();
  }

  virtual std::vector<std::string> ExtraArgs() const { return {}; }
  // A data client holding a read grant for whatever VM it asks about.
  std::unique_ptr<Client> NewClient() {
    return std::make_unique<Client>(certs_, certs_.client_cert, certs_.client_key, [this](const std::string& vm) {
      if (!ValidateName("vm", vm).ok()) return std::string();
      GrantSpec g;
      g.holder_cert = certs_.client_cert;
      g.vm = vm;
      return MintGrant(certs_, g);
    });
  }
  std::unique_ptr<Client> NewAdminClient() {
    return std::make_unique<Client>(certs_, certs_.admin_cert, certs_.admin_key);
  }
  std::string Url(const std::string& path) const { return server_->url() + path; }
  std::string ImageUrl(const std::string& image = "root.raw") const { return Url("/v1/vms/vm-42/images/" + image); }

  void ExpectError(HttpReply r, long status, const std::string& code, const std::string& reason_has = "") {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers["affinity-error"], code) << r.body;
    auto j = Json(r);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"], code);
    ASSERT_TRUE(j["reason"].is_string()) << r.body;
    EXPECT_FALSE(j["reason"].get<std::string>().empty());
    if (!reason_has.empty()) {
      EXPECT_NE(j["reason"].get<std::string>().find(reason_has), std::string::npos) << r.body;
    }
  }

  TempDir dir_;
  Certs certs_;
  std::string root_, bytes_, secret_;
  std::unique_ptr<StoragedProcess> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Client> admin_;
};

TEST_F(StorageServerTest, HealthAndListingsWithSizeAndGeneration) {
  auto health = client_->Get(Url("/v1/health"));
  ASSERT_EQ(health.status, 200) << health.error;
  EXPECT_EQ(Json(health)["status"], "ok");
  EXPECT_TRUE(Json(health)["version"].is_string());
  auto vms = admin_->Get(Url("/v1/vms"));
  ASSERT_EQ(vms.status, 200) << vms.body;
  // The symlinked VM directory is not listed.
  EXPECT_EQ(Json(vms), nlohmann::json::parse(R"({"vms":[{"name":"vm-42"},{"name":"vm-7"}]})"));
  auto images = client_->Get(Url("/v1/vms/vm-42/images"));
  ASSERT_EQ(images.status, 200) << images.body;
  auto j = Json(images);
  EXPECT_EQ(j["vm"], "vm-42");
  ASSERT_EQ(j["images"].size(), 2u) << images.body;  // escape.raw (a symlink) is not listed
  EXPECT_EQ(j["images"][0], nlohmann::json::parse(R"({"name":"data.raw","size":1000,"generation":1})"));
  EXPECT_EQ(j["images"][1]["name"], "root.raw");
  EXPECT_EQ(j["images"][1]["size"], kSize);
  EXPECT_EQ(j["images"][1]["generation"], 1);
}

TEST_F(StorageServerTest, RangeGetsAreByteExactWithMatchingDigest) {
  std::mt19937_64 rng(7);  // fixed seed: reproducible offsets
  for (int i = 0; i < 40; ++i) {
    uint64_t off = rng() % kSize;
    uint64_t len = 1 + rng() % (i % 8 == 0 ? (20 << 20) : 300000);  // some above the 16 MiB memory limit
    auto r = client_->Get(ImageUrl(), std::to_string(off) + "-" + std::to_string(off + len - 1));
    ASSERT_EQ(r.status, 206) << r.error;
    uint64_t expect = std::min<uint64_t>(len, kSize - off);  // clamped at EOF
    ASSERT_EQ(r.body.size(), expect);
    ASSERT_TRUE(r.body == bytes_.substr(off, expect)) << "bytes differ at offset " << off;
    EXPECT_EQ(r.headers["content-range"], FormatContentRange({off, expect}, kSize));
    EXPECT_EQ(r.headers["content-length"], std::to_string(expect));
    EXPECT_EQ(r.headers["content-digest"], ContentDigestValue(Sha256(r.body)));
    EXPECT_EQ(r.headers["accept-ranges"], "bytes");
    EXPECT_EQ(r.headers["content-type"], "application/octet-stream");
    EXPECT_EQ(r.headers["affinity-generation"], "1");
  }
  auto past_eof = client_->Get(ImageUrl(), std::to_string(kSize - 10) + "-" + std::to_string(kSize + 1000));
  EXPECT_EQ(past_eof.status, 206);
  EXPECT_TRUE(past_eof.body == bytes_.substr(kSize - 10));
  auto suffix = client_->Get(ImageUrl(), "-100");
  EXPECT_TRUE(suffix.body == bytes_.substr(kSize - 100));
  EXPECT_EQ(suffix.headers["content-digest"], ContentDigestValue(Sha256(suffix.body)));
}

TEST_F(StorageServerTest, WholeFileAndLargeRangesAreStreamedWithADigest) {
  auto whole = client_->Get(ImageUrl());  // 40 MiB: hashed, then streamed in pieces
  ASSERT_EQ(whole.status, 200) << whole.error;
  EXPECT_EQ(whole.headers.count("content-range"), 0u);
  EXPECT_EQ(whole.headers["content-length"], std::to_string(kSize));
  EXPECT_TRUE(whole.body == bytes_);
  EXPECT_EQ(whole.headers["content-digest"], ContentDigestValue(Sha256(bytes_)));
  auto large = client_->Get(ImageUrl(), "1-" + std::to_string(kSize - 2));
  ASSERT_EQ(large.status, 206);
  EXPECT_TRUE(large.body == bytes_.substr(1, kSize - 2));
  EXPECT_EQ(large.headers["content-digest"], ContentDigestValue(Sha256(large.body)));
}

TEST_F(StorageServerTest, HeadGivesTheHeadersOfGetWithoutABody) {
  auto r = client_->Get(ImageUrl(), "0-99", /*head=*/true);
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.headers["content-length"], "100");
  EXPECT_EQ(r.headers["content-range"], FormatContentRange({0, 100}, kSize));
  EXPECT_EQ(r.headers["content-digest"], ContentDigestValue(Sha256(bytes_.substr(0, 100))));
  auto whole = client_->Get(ImageUrl(), "", /*head=*/true);
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.headers["content-length"], std::to_string(kSize));
  EXPECT_EQ(whole.headers["content-digest"], ContentDigestValue(Sha256(bytes_)));
  EXPECT_EQ(client_->Get(Url("/v1/health")).status, 200) << "the connection is still in sync after HEAD";
}

TEST_F(StorageServerTest, BadRangesGet416Or400WithAReason) {
  auto r = client_->Get(ImageUrl(), std::to_string(kSize) + "-");
  ExpectError(r, 416, "range_not_satisfiable");
  EXPECT_EQ(r.headers["content-range"], "bytes */" + std::to_string(kSize));
  ExpectError(client_->Get(ImageUrl(), "0-1,5-9"), 400, "bad_range", "multiple");
  ExpectError(client_->Get(ImageUrl(), "9-3"), 400, "bad_range");
  RequestOptions o;
  o.headers = {"Range: pages=1-2"};
  ExpectError(client_->Perform(ImageUrl(), o), 400, "bad_range");
}

TEST_F(StorageServerTest, PathTraversalAbsolutePathsAndSymlinksAreRefused) {
  for (const char* path :
       {"/v1/vms/../images", "/v1/vms/vm-42/images/..%2f..%2fsecret", "/v1/vms/%2e%2e/images",
        "/v1/vms/vm-42/images/%2e%2e", "/v1/vms/vm-42/images/%2E%2E%2Fsecret", "/v1/vms/vm-42/images/../../../secret",
        "/v1/vms/%2Fetc/images", "/v1/vms/vm-42/images/%2Fetc%2Fpasswd", "/v1/vms//etc/images",
        "/v1/vms/vm-42/images/.hidden", "/v1/vms/vm-42/images/a%00b", "/v1/vms/vm-42/images/%zz"}) {
    auto r = client_->Get(Url(path));
    EXPECT_GE(r.status, 400) << path;
    EXPECT_LT(r.status, 500) << path;
    EXPECT_FALSE(r.headers["affinity-error"].empty()) << path;
    EXPECT_FALSE(Json(r)["reason"].get<std::string>().empty()) << path;
    EXPECT_EQ(r.body.find(secret_), std::string::npos) << path;
  }
  ExpectError(client_->Get(Url("/v1/vms/%2e%2e/images")), 400, "bad_name");
  ExpectError(client_->Get(Url("/v1/vms/vm-42/images/%2Fetc%2Fpasswd")), 400, "bad_name", "'/'");
  // A symlink pointing outside ROOT, and a symlinked VM directory.
  ExpectError(client_->Get(ImageUrl("escape.raw")), 403, "forbidden", "symbolic link");
  ExpectError(client_->Get(Url("/v1/vms/vm-link/images")), 403, "forbidden", "symbolic link");
  ExpectError(client_->Get(Url("/v1/vms/vm-link/images/root.raw")), 403, "forbidden", "symbolic link");
}

TEST_F(StorageServerTest, UnknownVmImageOrEndpointIs404WithAReason) {
  ExpectError(client_->Get(ImageUrl("none.raw")), 404, "not_found", "none.raw");
  ExpectError(client_->Get(Url("/v1/vms/vm-9/images")), 404, "not_found", "vm-9");
  ExpectError(client_->Get(Url("/v1/vms/vm-9/images/root.raw")), 404, "not_found", "vm-9");
  ExpectError(client_->Get(Url("/v2/anything")), 404, "not_found");
}

TEST_F(StorageServerTest, MethodsOtherThanGetHeadAndPutAre405) {
  RequestOptions o;
  o.method = "DELETE";
  auto r = client_->Perform(ImageUrl(), o);
  ExpectError(r, 405, "method_not_allowed", "DELETE");
  EXPECT_EQ(r.headers["allow"], "GET, HEAD, PUT");
  o.method = "PUT";
  ExpectError(client_->Perform(Url("/v1/vms"), o), 405, "method_not_allowed");
}

TEST_F(StorageServerTest, MalformedRequestsAre400BadRequest) {
  RequestOptions huge;
  huge.headers = {"X-Filler: " + std::string(20000, 'a')};
  auto r = client_->Perform(Url("/v1/health"), huge);
  ExpectError(r, 400, "bad_request", "header");
  RequestOptions with_body;
  with_body.body = "hello";
  ExpectError(client_->Perform(Url("/v1/health"), with_body), 400, "bad_request", "body");
  EXPECT_EQ(client_->Get(Url("/v1/health")).status, 200) << "the server carries on";
}

TEST_F(StorageServerTest, ClientsWithoutATrustedCertificateGetNothing) {
  Client anonymous(certs_, "", "");
  auto r = anonymous.Get(Url("/v1/vms"));
  EXPECT_NE(r.curl, CURLE_OK) << "a client without a certificate got an answer";
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.body.empty());
  Client stranger(certs_, certs_.other_client_cert, certs_.other_client_key);
  r = stranger.Get(Url("/v1/vms"));
  EXPECT_NE(r.curl, CURLE_OK) << "a certificate from another CA was accepted";
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.body.empty());
  // Each refusal is logged, and trusted clients (any cert of the CA) are still served.
  EXPECT_TRUE(Eventually([&] {
    std::string log = server_->log();
    size_t first = log.find("TLS handshake with");
    return first != std::string::npos && log.find("TLS handshake with", first + 1) != std::string::npos;
  })) << server_->log();
  Client second(certs_, certs_.client2_cert, certs_.client2_key);
  EXPECT_EQ(second.Get(Url("/v1/health")).status, 200);
  EXPECT_EQ(client_->Get(Url("/v1/health")).status, 200);
}

TEST_F(StorageServerTest, MetricsCountRequestsAndBytesExactly) {
  client_->Get(ImageUrl(), "0-999");
  client_->Get(ImageUrl(), "1000-1999");
  client_->Get(ImageUrl(), "0-" + std::to_string((20 << 20) - 1));  // streamed
  client_->Get(ImageUrl("data.raw"));
  client_->Get(ImageUrl(), "0-9", /*head=*/true);  // no body: not counted
  client_->Get(ImageUrl("none.raw"));              // an error
  admin_->Get(Url("/v1/vms"));                    // not a data request
  auto m = Json(admin_->Get(Url("/v1/metrics")));
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["requests"], 3);
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["bytes"], 2000 + (20 << 20));
  EXPECT_EQ(m["images"]["vm-42/data.raw"]["requests"], 1);
  EXPECT_EQ(m["images"]["vm-42/data.raw"]["bytes"], 1000);
  EXPECT_EQ(m["images"].size(), 2u);
  EXPECT_EQ(m["requests_total"], 4);
  EXPECT_EQ(m["bytes_total"], 3000 + (20 << 20));
  EXPECT_EQ(m["errors_total"], 1);
}

TEST_F(StorageServerTest, KeepAliveReusesOneConnection) {
  auto first = client_->Get(Url("/v1/health"));
  EXPECT_EQ(first.connects, 1);
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Get(ImageUrl(), "0-4095");
    EXPECT_EQ(r.status, 206);
    EXPECT_EQ(r.connects, 0) << "request " << i << " opened a new connection";
  }
  auto big = client_->Get(ImageUrl(), "0-" + std::to_string((17 << 20) - 1));  // streamed reply
  EXPECT_EQ(big.status, 206);
  EXPECT_EQ(client_->Get(ImageUrl(), "0-9", true).connects, 0);
  EXPECT_EQ(client_->Get(Url("/v1/vms/vm-42/images/none.raw")).connects, 0) << "errors keep the connection";
}

TEST_F(StorageServerTest, ConcurrentClientsAllGetExactBytes) {
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto client = NewClient();
      std::mt19937_64 rng(100 + t);
      for (int i = 0; i < 10; ++i) {
        uint64_t off = rng() % kSize, len = 1 + rng() % 200000;
        auto r = client->Get(ImageUrl(), std::to_string(off) + "-" + std::to_string(off + len - 1));
        uint64_t expect = std::min<uint64_t>(len, kSize - off);
        if (r.status != 206 || r.body != bytes_.substr(off, expect) ||
            r.headers["content-digest"] != ContentDigestValue(Sha256(r.body))) {
          bad++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(Json(admin_->Get(Url("/v1/metrics")))["requests_total"], 60);
}

TEST_F(StorageServerTest, GenerationBumpsOnChangeAndPersistsAcrossRestart) {
  auto generation = [&] {
    return Json(client_->Get(Url("/v1/vms/vm-42/images")))["images"][0]["generation"].get<int>();
  };
  EXPECT_EQ(generation(), 1);
  { std::ofstream(root_ + "/vm-42/data.raw", std::ios::app) << "more"; }
  EXPECT_EQ(generation(), 2);
  EXPECT_EQ(generation(), 2) << "no change, no bump";
  EXPECT_EQ(client_->Get(ImageUrl("data.raw")).headers["affinity-generation"], "2");
  // Replaced by a file of the same size: a new inode is a change too.
  WriteRandomFile(root_ + "/vm-42/data.new", 1004, 5);
  ASSERT_EQ(::rename((root_ + "/vm-42/data.new").c_str(), (root_ + "/vm-42/data.raw").c_str()), 0);
  EXPECT_EQ(client_->Get(ImageUrl("data.raw"), "0-9").headers["affinity-generation"], "3") << "seen by a data request";
  EXPECT_EQ(generation(), 3);

  uint16_t port = server_->port();
  server_->Stop();  // SIGTERM: exits 0
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(server_->port(), port) << "a restart rebinds the same port";
  client_ = NewClient();
  EXPECT_EQ(generation(), 3) << "the generation must survive a restart";
  EXPECT_EQ(Json(client_->Get(Url("/v1/vms/vm-42/images")))["images"][1]["generation"], 1);
}

TEST_F(StorageServerTest, IdleConnectionsAreClosedByTheServer) {
  // A TCP client that never starts TLS is dropped after --idle-timeout (1 s here).
  server_->Stop();
  StoragedOptions o;
  o.root = root_;
  o.state_dir = dir_ / "state2";
  ASSERT_EQ(::mkdir(o.state_dir.c_str(), 0700), 0);
  o.certs = &certs_;
  o.extra_args = {"--idle-timeout", "1"};
  StoragedProcess quick(o);
  ASSERT_NO_FATAL_FAILURE(quick.Start());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(quick.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval limit{20, 0};  // a bound for a broken server, not a wait for a working one
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char byte;
  auto start = std::chrono::steady_clock::now();
  ssize_t n = ::recv(fd, &byte, 1, 0);
  auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(n, 0) << "expected the server to close the idle connection";
  EXPECT_LT(waited, std::chrono::seconds(15));
  EXPECT_TRUE(Eventually([&] { return quick.log().find("no handshake within 1 s") != std::string::npos; }))
      << quick.log();
}

class FaultyServerTest : public StorageServerTest {
 protected:
  std::vector<std::string> ExtraArgs() const override { return {"--test-fault", "corrupt-body:2"}; }
};

TEST_F(FaultyServerTest, CorruptBodyFaultBreaksTheDigestExactlyTwice) {
  EXPECT_NE(server_->log().find("TEST FAULTS ARE ON"), std::string::npos) << server_->log();
  client_->Get(ImageUrl(), "0-65535", /*head=*/true);  // HEAD has no body: not corrupted, not consumed
  auto bad = client_->Get(ImageUrl(), "0-65535");
  ASSERT_EQ(bad.status, 206);
  EXPECT_EQ(bad.body.size(), 65536u);
  EXPECT_EQ(bad.headers["content-digest"], ContentDigestValue(Sha256(bytes_.substr(0, 65536))))
      << "the digest is of the true bytes";
  EXPECT_NE(bad.headers["content-digest"], ContentDigestValue(Sha256(bad.body)));
  auto bad_streamed = client_->Get(ImageUrl(), "0-" + std::to_string((17 << 20) - 1));
  ASSERT_EQ(bad_streamed.body.size(), 17u << 20);
  EXPECT_NE(bad_streamed.headers["content-digest"], ContentDigestValue(Sha256(bad_streamed.body)));
  for (int i = 0; i < 3; ++i) {
    auto good = client_->Get(ImageUrl(), "0-65535");
    EXPECT_EQ(good.headers["content-digest"], ContentDigestValue(Sha256(good.body)));
    EXPECT_TRUE(good.body == bytes_.substr(0, 65536));
  }
}

class SlowServerTest : public StorageServerTest {
 protected:
  // One I/O thread: a delayed reply must not hold it.
  std::vector<std::string> ExtraArgs() const override { return {"--threads", "1", "--test-delay-ms", "3000"}; }
};

TEST_F(SlowServerTest, DelayedDataRepliesDoNotBlockTheOnlyIoThread) {
  std::atomic<bool> slow_done{false};
  HttpReply slow;
  std::thread t([&] {
    auto c = NewClient();
    slow = c->Get(ImageUrl(), "0-99");
    slow_done = true;
  });
  // The data request is counted as soon as it is routed, i.e. before its delay.
  ASSERT_TRUE(Eventually([&] { return Json(admin_->Get(Url("/v1/metrics")))["requests_total"] == 1; }));
  auto health = client_->Get(Url("/v1/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_FALSE(slow_done.load()) << "the health check waited for the delayed reply";
  t.join();
  EXPECT_EQ(slow.status, 206);
  EXPECT_TRUE(slow.body == bytes_.substr(0, 100));
}

TEST_F(SlowServerTest, SigtermFinishesTheReplyInProgressThenExitsZero) {
  HttpReply slow;
  std::thread t([&] {
    auto c = NewClient();
    slow = c->Get(ImageUrl(), "0-99");
  });
  ASSERT_TRUE(Eventually([&] { return Json(admin_->Get(Url("/v1/metrics")))["requests_total"] == 1; }));
  server_->Stop();  // EXPECTs exit status 0
  t.join();
  EXPECT_EQ(slow.status, 206) << slow.error;
  EXPECT_TRUE(slow.body == bytes_.substr(0, 100));
}

TEST(StoragedCommandLine, BadFlagsExitNonZeroWithAMessage) {
  TempDir dir;
  Certs certs = GenerateCerts(dir / "certs");
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"--root", dir / "missing"}, "root"},
      {{"--listen", "nonsense"}, "HOST:PORT"},
      {{"--listen", "127.0.0.1:99999"}, "port"},
      {{"--listen", "localhost:0"}, "not an IP address"},
      {{"--tls-cert", dir / "nope.pem"}, "--tls-cert"},
      {{"--tls-key", certs.client_key}, "--tls-key"},  // does not match the certificate
      {{"--client-ca", certs.server_key}, "--client-ca"},
      {{"--threads", "0"}, "--threads"},
      {{"--log-level", "loud"}, "--log-level"},
      {{"--test-fault", "explode"}, "test-fault"},
      {{"--no-such-flag"}, "no-such-flag"},
      {{"--admin-ca", certs.ca_cert}, "separate CA"},          // admin CA = client CA: refused
      {{"--admin-ca", certs.server_key}, "--admin-ca"},
      {{"--grant-key", certs.server_key}, "not an Ed25519 key"},  // an EC key
      {{"--grant-key", dir / "nope.key"}, "--grant-key"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinaryPath("affinity-storaged"),
                                     "--root",
                                     dir.path(),
                                     "--state",
                                     dir / "state",
                                     "--tls-cert",
                                     certs.server_cert,
                                     "--tls-key",
                                     certs.server_key,
                                     "--client-ca",
                                     certs.ca_cert,
                                     "--admin-ca",
                                     certs.admin_ca_cert,
                                     "--grant-key",
                                     certs.grant_key,
                                     "--listen",
                                     "127.0.0.1:0"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());  // later flags override earlier ones
    Subprocess p;
    std::string log = dir / "log";
    ::unlink(log.c_str());
    ASSERT_TRUE(p.Start(argv, log));
    int status = p.Wait(std::chrono::seconds(10));
    std::string out = ReadWholeFile(log);
    EXPECT_NE(status, 0) << c.expect << ": " << out;
    EXPECT_NE(status, -1) << c.expect << ": still running";
    EXPECT_NE(out.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << out;
    if (status == -1) p.Signal(SIGKILL);
  }
  // A missing required flag.
  Subprocess p;
  std::string log = dir / "log";
  ::unlink(log.c_str());
  ASSERT_TRUE(p.Start({BinaryPath("affinity-storaged"), "--root", dir.path()}, log));
  EXPECT_NE(p.Wait(std::chrono::seconds(10)), 0);
  EXPECT_NE(ReadWholeFile(log).find("required"), std::string::npos) << ReadWholeFile(log);
}

TEST(StoragedCommandLine, APortInUseIsAClearError) {
  TempDir dir;
  Certs certs = GenerateCerts(dir / "certs");
  ASSERT_EQ(::mkdir((dir / "root").c_str(), 0755), 0);
  StoragedOptions o;
  o.root = dir / "root";
  o.state_dir = dir.path();
  o.certs = &certs;
  StoragedProcess first(o);
  ASSERT_NO_FATAL_FAILURE(first.Start());
  Subprocess second;
  std::string log = dir / "second.log";
  ASSERT_TRUE(second.Start({BinaryPath("affinity-storaged"), "--root", dir / "root", "--state", dir / "state2",
                            "--tls-cert", certs.server_cert, "--tls-key", certs.server_key, "--admin-ca", certs.admin_ca_cert,
                            "--grant-key", certs.grant_key, "--client-ca",
                            certs.ca_cert, "--listen", "127.0.0.1:" + std::to_string(first.port())},
                           log));
  EXPECT_EQ(second.Wait(std::chrono::seconds(10)), 1);
  EXPECT_NE(ReadWholeFile(log).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << ReadWholeFile(log);
}

}  // namespace
}  // namespace affinity::testing
