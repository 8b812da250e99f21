// affinity-storaged over real mutual TLS, driven with libcurl's easy API
// (an independent client, not our fetcher, so the server is checked against
// what any HTTP client sees).
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/byte_range.h"
#include "common/digest.h"
#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {

struct HttpReply {
  CURLcode curl = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  long connects = 0;
  std::string error;
};

class Client {
 public:
  Client(const Certs& certs, std::string cert, std::string key) : certs_(certs), cert_(std::move(cert)), key_(std::move(key)) {
    easy_ = curl_easy_init();
  }
  ~Client() { curl_easy_cleanup(easy_); }

  HttpReply Get(const std::string& url, const std::string& range = "", bool head = false) {
    HttpReply r;
    char err[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_CAINFO, certs_.ca_cert.c_str());
    if (!cert_.empty()) {
      curl_easy_setopt(easy_, CURLOPT_SSLCERT, cert_.c_str());
      curl_easy_setopt(easy_, CURLOPT_SSLKEY, key_.c_str());
    }
    curl_easy_setopt(easy_, CURLOPT_RANGE, range.empty() ? nullptr : range.c_str());
    curl_easy_setopt(easy_, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(easy_, CURLOPT_PATH_AS_IS, 1L);  // send ".." as is: we test the server, not curl
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
      static_cast<std::string*>(u)->append(p, s * n);
      return s * n;
    });
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
      std::string line(p, s * n);
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string k = line.substr(0, colon);
        for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        v.erase(v.find_last_not_of("\r\n ") + 1);
        (*static_cast<std::map<std::string, std::string>*>(u))[k] = v;
      }
      return s * n;
    });
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &r.headers);
    r.curl = curl_easy_perform(easy_);
    r.error = err;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(easy_, CURLINFO_NUM_CONNECTS, &r.connects);
    return r;
  }

 private:
  const Certs& certs_;
  std::string cert_, key_;
  CURL* easy_;
};

class StorageServerTest : public ::testing::Test {
 protected:
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
    StoragedOptions o;
    o.root = root_;
    o.state_dir = dir_ / "state";
    ::mkdir(o.state_dir.c_str(), 0700);
    o.certs = &certs_;
    o.extra_args = extra_args_;
    server_ = std::make_unique<StoragedProcess>(o);
    server_->Start();
    client_ = std::make_unique<Client>(certs_, certs_.client_cert, certs_.client_key);
  }

  std::string Url(const std::string& path) { return server_->url() + path; }
  nlohmann::json Json(const HttpReply& r) { return nlohmann::json::parse(r.body, nullptr, false); }
  void ExpectError(HttpReply r, long status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers["affinity-error"], code);
    auto j = Json(r);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"], code);
    EXPECT_FALSE(j["reason"].get<std::string>().empty());
  }

  static constexpr uint64_t kSize = (40ull << 20) + 333;  // larger than the in-memory range limit
  std::vector<std::string> extra_args_;
  TempDir dir_;
  Certs certs_;
  std::string root_, bytes_;
  std::unique_ptr<StoragedProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(StorageServerTest, ListsVmsAndImagesWithSizeAndGeneration) {
  auto vms = client_->Get(Url("/v1/vms"));
  ASSERT_EQ(vms.status, 200) << vms.body;
  // Symlinked VM directories are not listed.
  EXPECT_EQ(Json(vms), nlohmann::json::parse(R"({"vms":[{"name":"vm-42"},{"name":"vm-7"}]})"));
  auto images = client_->Get(Url("/v1/vms/vm-42/images"));
  ASSERT_EQ(images.status, 200) << images.body;
  auto j = Json(images);
  ASSERT_EQ(j["images"].size(), 2u) << images.body;  // escape.raw (a symlink) is not listed
  EXPECT_EQ(j["images"][0]["name"], "data.raw");
  EXPECT_EQ(j["images"][1]["name"], "root.raw");
  EXPECT_EQ(j["images"][1]["size"], kSize);
  EXPECT_EQ(j["images"][1]["generation"], 1);
  ExpectError(client_->Get(Url("/v1/vms/nope/images")), 404, "not_found");
}

TEST_F(StorageServerTest, RangeGetsAreByteExactWithMatchingDigest) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    uint64_t off = rng() % kSize;
    uint64_t len = 1 + rng() % (i % 8 == 0 ? (20 << 20) : 300000);
    auto r = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), std::to_string(off) + "-" + std::to_string(off + len - 1));
    ASSERT_EQ(r.status, 206);
    uint64_t expect = std::min<uint64_t>(len, kSize - off);  // clamped at EOF
    ASSERT_EQ(r.body.size(), expect);
    ASSERT_TRUE(r.body == bytes_.substr(off, expect)) << "at " << off;
    EXPECT_EQ(r.headers["content-range"], FormatContentRange({off, expect}, kSize));
    EXPECT_EQ(r.headers["content-digest"], ContentDigestValue(Sha256(r.body)));
    EXPECT_EQ(r.headers["accept-ranges"], "bytes");
    EXPECT_EQ(r.headers["affinity-generation"], "1");
  }
  auto suffix = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "-100");
  EXPECT_TRUE(suffix.body == bytes_.substr(kSize - 100));
  auto whole = client_->Get(Url("/v1/vms/vm-42/images/root.raw"));  // 40 MiB: streamed in two passes
  ASSERT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == bytes_);
  EXPECT_EQ(whole.headers["content-digest"], ContentDigestValue(Sha256(bytes_)));
}

TEST_F(StorageServerTest, HeadGivesHeadersOnly) {
  auto r = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-99", /*head=*/true);
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.headers["content-length"], "100");
  EXPECT_EQ(r.headers["content-digest"], ContentDigestValue(Sha256(bytes_.substr(0, 100))));
}

TEST_F(StorageServerTest, BadRangesGet416Or400WithAReason) {
  auto r = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), std::to_string(kSize) + "-");
  ExpectError(r, 416, "range_not_satisfiable");
  EXPECT_EQ(r.headers["content-range"], "bytes */" + std::to_string(kSize));
  ExpectError(client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-1,5-9"), 400, "bad_range");
  ExpectError(client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "9-3"), 400, "bad_range");
}

TEST_F(StorageServerTest, PathTraversalAndSymlinkEscapesAreRefused) {
  for (const char* path : {"/v1/vms/../images", "/v1/vms/vm-42/images/..%2f..%2fsecret",
                           "/v1/vms/%2e%2e/images", "/v1/vms/vm-42/images/%2e%2e", "/v1/vms/vm-42/images/.hidden",
                           "/v1/vms/vm-42/images/a%00b", "/v1/vms/vm-42/images/%zz"}) {
    auto r = client_->Get(Url(path));
    EXPECT_GE(r.status, 400) << path;
    EXPECT_LT(r.status, 500) << path;
    EXPECT_FALSE(r.headers["affinity-error"].empty()) << path;
  }
  ExpectError(client_->Get(Url("/v1/vms/vm-42/images/escape.raw")), 403, "forbidden");
  ExpectError(client_->Get(Url("/v1/vms/vm-link/images")), 403, "forbidden");
  ExpectError(client_->Get(Url("/v1/vms/vm-42/images/none.raw")), 404, "not_found");
  ExpectError(client_->Get(Url("/v2/anything")), 404, "not_found");
}

TEST_F(StorageServerTest, ClientsWithoutATrustedCertificateGetNothing) {
  Client anonymous(certs_, "", "");
  auto r = anonymous.Get(Url("/v1/vms"));
  EXPECT_NE(r.curl, CURLE_OK);
  EXPECT_EQ(r.status, 0);
  Client stranger(certs_, certs_.other_client_cert, certs_.other_client_key);
  r = stranger.Get(Url("/v1/vms"));
  EXPECT_NE(r.curl, CURLE_OK) << "a certificate from another CA was accepted";
  EXPECT_EQ(r.status, 0);
  // The server keeps serving trusted clients afterwards.
  EXPECT_EQ(client_->Get(Url("/v1/health")).status, 200);
}

TEST_F(StorageServerTest, MetricsCountRequestsAndBytesExactly) {
  client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-999");
  client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "1000-1999");
  client_->Get(Url("/v1/vms/vm-42/images/data.raw"));
  client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-9", /*head=*/true);  // no body: not counted
  auto m = Json(client_->Get(Url("/v1/metrics")));
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["requests"], 2);
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["bytes"], 2000);
  EXPECT_EQ(m["images"]["vm-42/data.raw"]["bytes"], 1000);
  EXPECT_EQ(m["bytes_total"], 3000);
}

TEST_F(StorageServerTest, KeepAliveReusesOneConnection) {
  auto first = client_->Get(Url("/v1/health"));
  EXPECT_EQ(first.connects, 1);
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-4095");
    EXPECT_EQ(r.status, 206);
    EXPECT_EQ(r.connects, 0) << "request " << i << " opened a new connection";
  }
}

TEST_F(StorageServerTest, GenerationBumpsOnChangeAndPersistsAcrossRestart) {
  auto gen = [&] { return Json(client_->Get(Url("/v1/vms/vm-42/images")))["images"][0]["generation"].get<int>(); };
  EXPECT_EQ(gen(), 1);
  { std::ofstream(root_ + "/vm-42/data.raw", std::ios::app) << "more"; }
  EXPECT_EQ(gen(), 2);
  EXPECT_EQ(gen(), 2) << "no change, no bump";
  server_->Stop();
  server_->Start();
  client_ = std::make_unique<Client>(certs_, certs_.client_cert, certs_.client_key);
  EXPECT_EQ(gen(), 2) << "generation must survive a restart";
}

TEST_F(StorageServerTest, MethodsOtherThanGetAndHeadAre405) {
  CURL* e = curl_easy_init();
  std::string url = Url("/v1/vms/vm-42/images/root.raw");
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CAINFO, certs_.ca_cert.c_str());
  curl_easy_setopt(e, CURLOPT_SSLCERT, certs_.client_cert.c_str());
  curl_easy_setopt(e, CURLOPT_SSLKEY, certs_.client_key.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
  ASSERT_EQ(curl_easy_perform(e), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  EXPECT_EQ(status, 405);
  curl_easy_cleanup(e);
}

class CorruptingServerTest : public StorageServerTest {
 protected:
  CorruptingServerTest() { extra_args_ = {"--test-fault", "corrupt-body:1"}; }
};

TEST_F(CorruptingServerTest, CorruptBodyFaultBreaksTheDigestExactlyOnce) {
  auto bad = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-65535");
  EXPECT_NE(bad.headers["content-digest"], ContentDigestValue(Sha256(bad.body)));
  auto good = client_->Get(Url("/v1/vms/vm-42/images/root.raw"), "0-65535");
  EXPECT_EQ(good.headers["content-digest"], ContentDigestValue(Sha256(good.body)));
  EXPECT_TRUE(good.body == bytes_.substr(0, 65536));
}

TEST(StoragedCommandLine, BadFlagsExitNonZeroWithAMessage) {
  TempDir dir;
  Certs certs = GenerateCerts(dir / "certs");
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"--root", dir / "missing"}, "root"},
      {{"--root", dir.path(), "--listen", "nonsense"}, "HOST:PORT"},
      {{"--root", dir.path(), "--listen", "127.0.0.1:99999"}, "port"},
      {{"--root", dir.path(), "--listen", "127.0.0.1:0", "--tls-cert", dir / "nope.pem"}, "--tls-cert"},
      {{"--root", dir.path(), "--listen", "127.0.0.1:0", "--test-fault", "explode"}, "test-fault"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinaryPath("affinity-storaged"), "--state", dir / "state",
                                     "--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
                                     "--client-ca", certs.ca_cert, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());  // later flags override earlier ones
    Subprocess p;
    std::string log = dir / "log";
    ::unlink(log.c_str());
    ASSERT_TRUE(p.Start(argv, log));
    int status = p.Wait(std::chrono::seconds(10));
    std::string out = ReadWholeFile(log);
    EXPECT_NE(status, 0) << c.expect;
    EXPECT_NE(out.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << out;
  }
}

}  // namespace
}  // namespace affinity::testing
