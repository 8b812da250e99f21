// VolumeStore, RangeHandler and ApiRouter on a real directory tree, without
// the network: safe opens, listings, ranges, digests, errors, metrics.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "acl/grant_token.h"
#include "common/digest.h"
#include "common/names.h"
#include "storage/api_router.h"
#include "storage/request_path.h"
#include "storage/range_handler.h"
#include "storage/volume_store.h"
#include "tests/support/test_env.h"

namespace affinity::storage {
namespace {

const std::string kPeerFingerprint(64, 'c');

std::string Header(const Reply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

class ApiTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = 100000;
  static constexpr uint64_t kBuffered = 4096;  // small, so the streamed path is exercised cheaply

  void SetUp() override {
    root_ = dir_ / "root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-42").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-7").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/.hidden").c_str(), 0755), 0);
    testing::WriteRandomFile(root_ + "/vm-42/root.raw", kSize, 1);
    testing::WriteRandomFile(root_ + "/vm-42/b.raw", 10, 2);
    testing::WriteRandomFile(root_ + "/vm-42/empty.raw", 0, 3);
    testing::WriteRandomFile(root_ + "/not-a-vm", 10, 4);
    testing::WriteRandomFile(dir_ / "secret", 10, 5);
    ASSERT_EQ(::mkdir((root_ + "/vm-42/subdir").c_str(), 0755), 0);
    ASSERT_EQ(::mkfifo((root_ + "/vm-42/pipe.raw").c_str(), 0644), 0);
    ASSERT_EQ(::symlink((dir_ / "secret").c_str(), (root_ + "/vm-42/escape.raw").c_str()), 0);
    ASSERT_EQ(::symlink("root.raw", (root_ + "/vm-42/alias.raw").c_str()), 0);
    ASSERT_EQ(::symlink((root_ + "/vm-42").c_str(), (root_ + "/vm-link").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (root_ + "/vm-etc").c_str()), 0);
    bytes_ = testing::ReadWholeFile(root_ + "/vm-42/root.raw");
    auto state = StateDb::Open(dir_ / "state");
    ASSERT_TRUE(state.ok());
    state_ = std::move(state).value();
    auto store = VolumeStore::Open(root_, state_.get());
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
    auto registry = MigrationRegistry::Open(dir_ / "state");
    ASSERT_TRUE(registry.ok());
    registry_ = std::move(registry).value();
    auto tracker = ChunkTracker::Open(dir_ / "state");
    ASSERT_TRUE(tracker.ok());
    tracker_ = std::move(tracker).value();
    auto key = acl::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    key_.emplace(std::move(*key));
    issuer_ = std::make_unique<GrantIssuer>(&*key_, "test-issuer", registry_.get());
    authorizer_ = std::make_unique<Authorizer>(&key_->verifying_key(), "test-issuer", registry_.get());
    ranges_ = std::make_unique<RangeHandler>(store_.get(), &metrics_, &faults_, tracker_.get(), kBuffered);
    ApiServices services;
    services.store = store_.get();
    services.metrics = &metrics_;
    services.ranges = ranges_.get();
    services.authorizer = authorizer_.get();
    services.issuer = issuer_.get();
    services.registry = registry_.get();
    services.tracker = tracker_.get();
    services.write_locks = &write_locks_;
    router_ = std::make_unique<ApiRouter>(services);
  }

  // A read grant of the peer "test" for the VM the target names (vm-42 otherwise).
  std::string GrantFor(const std::string& target) {
    std::string vm = "vm-42";
    auto seg = DecodePathSegments(target);
    if (seg.ok() && seg->size() >= 3 && (*seg)[1] == "vms" && ValidateName("vm", (*seg)[2]).ok()) vm = (*seg)[2];
    StandingGrantRequest g;
    g.holder = kPeerFingerprint;
    g.vm = vm;
    g.images = {"*"};
    g.ops = static_cast<uint8_t>(acl::Operation::kRead);
    g.ttl_seconds = 600;
    auto issued = issuer_->Issue(g);
    EXPECT_TRUE(std::holds_alternative<IssuedGrant>(issued));
    return std::holds_alternative<IssuedGrant>(issued) ? std::get<IssuedGrant>(issued).token : std::string();
  }

  Reply Get(const std::string& target, std::optional<std::string> range = std::nullopt, const char* method = "GET") {
    ApiRequest request;
    request.method = method;
    request.target = target;
    request.range = std::move(range);
    request.peer.address = "test";
    request.peer.fingerprint = kPeerFingerprint;
    request.peer.admin = true;  // for /v1/vms and /v1/metrics
    request.authorization = "Bearer " + GrantFor(target);
    return router_->Handle(request);
  }
  // The bytes a reply would put on the wire (reads a streamed range like the transport).
  std::string BodyOf(const Reply& r) {
    if (!r.stream_file) return r.body;
    std::string out(r.stream_range.length, '\0');
    EXPECT_TRUE(r.stream_file->ReadAt(r.stream_range.offset, out).ok());
    return out;
  }
  void ExpectError(const Reply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(Header(r, "Affinity-Error"), code);
    auto j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["error"], code);
    EXPECT_FALSE(j["reason"].get<std::string>().empty());
    EXPECT_EQ(r.error_code, code);
  }

  testing::TempDir dir_;
  std::string root_, bytes_;
  std::unique_ptr<StateDb> state_;
  std::unique_ptr<VolumeStore> store_;
  Metrics metrics_;
  TestFaults faults_;
  std::unique_ptr<MigrationRegistry> registry_;
  std::unique_ptr<ChunkTracker> tracker_;
  std::optional<acl::SigningKey> key_;
  std::unique_ptr<GrantIssuer> issuer_;
  std::unique_ptr<Authorizer> authorizer_;
  VmWriteLocks write_locks_;
  std::unique_ptr<RangeHandler> ranges_;
  std::unique_ptr<ApiRouter> router_;
};

// A write whose client went away before it was applied (the transport's
// ApiRequest::client_gone) changes nothing: applied late, after the client's
// retry or its restarted daemon's newer write, it would undo that write.
TEST_F(ApiTest, AWriteWhoseClientIsGoneIsNotApplied) {
  const std::string data(4096, 'w');
  auto dropped = store_->WriteAt("vm-42", "root.raw", 8192, data, [] { return true; });
  ASSERT_FALSE(dropped.ok());
  EXPECT_EQ(dropped.status().code(), StatusCode::kCancelled);
  EXPECT_NE(dropped.status().message().find("not applied"), std::string::npos) << dropped.status().message();
  EXPECT_EQ(testing::ReadWholeFile(root_ + "/vm-42/root.raw"), bytes_) << "not a byte changed";
  auto applied = store_->WriteAt("vm-42", "root.raw", 8192, data, [] { return false; });
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(testing::ReadWholeFile(root_ + "/vm-42/root.raw").substr(8192, 4096), data);
}

TEST_F(ApiTest, ListsOnlyRealDirectoriesAndRegularFilesWithValidNames) {
  auto vms = store_->ListVms();
  ASSERT_TRUE(vms.ok());
  EXPECT_EQ(*vms, (std::vector<std::string>{"vm-42", "vm-7"}));
  auto images = store_->ListImages("vm-42");
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 3u);  // no symlinks, FIFO or directory
  EXPECT_EQ((*images)[0].name, "b.raw");
  EXPECT_EQ((*images)[1].name, "empty.raw");
  EXPECT_EQ((*images)[2].name, "root.raw");
  EXPECT_EQ((*images)[2].size, kSize);
  EXPECT_EQ((*images)[2].generation, 1u);
}

TEST_F(ApiTest, OpenRefusesEscapesAndOddFiles) {
  auto code = [&](const std::string& vm, const std::string& image) {
    return store_->OpenImageFile(vm, image).status().code();
  };
  EXPECT_EQ(code("vm-42", "root.raw"), StatusCode::kOk);
  EXPECT_EQ(code("vm-42", "escape.raw"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code("vm-42", "alias.raw"), StatusCode::kPermissionDenied) << "even a symlink inside ROOT";
  EXPECT_EQ(code("vm-link", "root.raw"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code("vm-etc", "passwd"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code("vm-42", "pipe.raw"), StatusCode::kNotFound) << "a FIFO must not block, and is not an image";
  EXPECT_EQ(code("vm-42", "subdir"), StatusCode::kNotFound);
  EXPECT_EQ(code("vm-42", "none.raw"), StatusCode::kNotFound);
  EXPECT_EQ(code("vm-none", "root.raw"), StatusCode::kNotFound);
  EXPECT_EQ(code("not-a-vm", "x"), StatusCode::kNotFound);
  for (const char* bad : {"..", ".", "../secret", "/etc/passwd", "", ".hidden", "a/b"}) {
    EXPECT_EQ(code("vm-42", bad), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(code(bad, "root.raw"), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ApiTest, JsonEndpoints) {
  Reply health = Get("/v1/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(nlohmann::json::parse(health.body)["status"], "ok");
  EXPECT_EQ(Header(health, "Content-Type"), "application/json");
  Reply vms = Get("/v1/vms");
  EXPECT_EQ(nlohmann::json::parse(vms.body), nlohmann::json::parse(R"({"vms":[{"name":"vm-42"},{"name":"vm-7"}]})"));
  Reply images = Get("/v1/vms/vm-7/images/");
  EXPECT_EQ(nlohmann::json::parse(images.body), nlohmann::json::parse(R"({"vm":"vm-7","images":[]})"));
}

TEST_F(ApiTest, SmallRangesComeFromMemoryWithTheirDigest) {
  Reply r = Get("/v1/vms/vm-42/images/root.raw", "bytes=10-1009");
  EXPECT_EQ(r.status, 206);
  EXPECT_FALSE(r.stream_file);
  EXPECT_EQ(r.body, bytes_.substr(10, 1000));
  EXPECT_EQ(r.content_length, 1000u);
  EXPECT_EQ(Header(r, "Content-Range"), "bytes 10-1009/100000");
  EXPECT_EQ(Header(r, "Content-Digest"), ContentDigestValue(Sha256(r.body)));
  EXPECT_EQ(Header(r, "Affinity-Generation"), "1");
  EXPECT_EQ(Header(r, "Accept-Ranges"), "bytes");
  EXPECT_EQ(Header(r, "Content-Type"), "application/octet-stream");
}

TEST_F(ApiTest, LargeRangesAreHashedThenStreamed) {
  Reply r = Get("/v1/vms/vm-42/images/root.raw", "bytes=5000-");
  EXPECT_EQ(r.status, 206);
  ASSERT_TRUE(r.stream_file);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.stream_range, (ByteRange{5000, kSize - 5000}));
  EXPECT_EQ(Header(r, "Content-Digest"), ContentDigestValue(Sha256(bytes_.substr(5000))));
  Reply whole = Get("/v1/vms/vm-42/images/root.raw");
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(Header(whole, "Content-Range"), "");
  EXPECT_TRUE(BodyOf(whole) == bytes_);
  EXPECT_EQ(Header(whole, "Content-Digest"), ContentDigestValue(Sha256(bytes_)));
}

TEST_F(ApiTest, HeadHasTheGetHeadersAndNoBody) {
  for (const char* range : {"bytes=0-99", "bytes=0-"}) {  // buffered and streamed sizes
    Reply get = Get("/v1/vms/vm-42/images/root.raw", range);
    Reply head = Get("/v1/vms/vm-42/images/root.raw", range, "HEAD");
    EXPECT_TRUE(head.head_only);
    EXPECT_TRUE(head.body.empty());
    EXPECT_FALSE(head.stream_file);
    EXPECT_EQ(head.content_length, get.content_length);
    EXPECT_EQ(Header(head, "Content-Digest"), Header(get, "Content-Digest"));
  }
}

TEST_F(ApiTest, EmptyImage) {
  Reply whole = Get("/v1/vms/vm-42/images/empty.raw");
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.content_length, 0u);
  EXPECT_EQ(Header(whole, "Content-Digest"), ContentDigestValue(Sha256(std::string())));
  ExpectError(Get("/v1/vms/vm-42/images/empty.raw", "bytes=0-"), 416, "range_not_satisfiable");
}

TEST_F(ApiTest, BadAndUnsatisfiableRanges) {
  Reply r = Get("/v1/vms/vm-42/images/root.raw", "bytes=100000-");
  ExpectError(r, 416, "range_not_satisfiable");
  EXPECT_EQ(Header(r, "Content-Range"), "bytes */100000");
  for (const char* bad : {"bytes=0-1,5-9", "bytes=9-3", "items=0-1", "bytes=x-", "bytes=-"}) {
    ExpectError(Get("/v1/vms/vm-42/images/root.raw", bad), 400, "bad_range");
  }
}

TEST_F(ApiTest, RefusalsCarryCodeAndReason) {
  ExpectError(Get("/v1/vms/%2e%2e/images"), 400, "bad_name");
  ExpectError(Get("/v1/vms/vm-42/images/..%2f..%2fsecret"), 400, "bad_name");
  ExpectError(Get("/v1/vms/%2Fetc/images"), 400, "bad_name");
  ExpectError(Get("/v1/vms//images"), 400, "bad_name");
  ExpectError(Get("/v1/vms/vm-42/images/%zz"), 400, "bad_request");
  ExpectError(Get("/v1/vms/vm-42/images/escape.raw"), 403, "forbidden");
  ExpectError(Get("/v1/vms/vm-link/images"), 403, "forbidden");
  Reply missing = Get("/v1/vms/vm-42/images/none.raw");
  ExpectError(missing, 404, "not_found");
  EXPECT_NE(missing.error_reason.find("none.raw"), std::string::npos) << missing.error_reason;
  ExpectError(Get("/v1/vms/vm-9/images"), 404, "not_found");
  ExpectError(Get("/v2/health"), 404, "not_found");
  Reply post = Get("/v1/vms/vm-42/images/root.raw", std::nullopt, "POST");
  ExpectError(post, 405, "method_not_allowed");
  EXPECT_EQ(Header(post, "Allow"), "GET, HEAD, PUT");
  ExpectError(Get("/v1/health", std::nullopt, "HEAD"), 405, "method_not_allowed");
  ExpectError(router_->MalformedRequest("peer", "header too large"), 400, "bad_request");
}

TEST_F(ApiTest, MetricsCountDataRequestsBytesAndErrors) {
  Get("/v1/vms/vm-42/images/root.raw", "bytes=0-999");
  Get("/v1/vms/vm-42/images/root.raw", "bytes=90000-");  // streamed: 10000 bytes
  Get("/v1/vms/vm-42/images/b.raw");
  Get("/v1/vms/vm-42/images/root.raw", "bytes=0-9", "HEAD");  // no body: not a data request
  Get("/v1/vms/vm-42/images/none.raw");
  Get("/v1/vms/vm-42/images/root.raw", "bytes=0-1,3-4");
  auto m = nlohmann::json::parse(Get("/v1/metrics").body);
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["requests"], 2);
  EXPECT_EQ(m["images"]["vm-42/root.raw"]["bytes"], 11000);
  EXPECT_EQ(m["images"]["vm-42/b.raw"]["requests"], 1);
  EXPECT_EQ(m["images"]["vm-42/b.raw"]["bytes"], 10);
  EXPECT_EQ(m["requests_total"], 3);
  EXPECT_EQ(m["bytes_total"], 11010);
  EXPECT_EQ(m["errors_total"], 2);
}

TEST_F(ApiTest, CorruptBodyFaultAppliesAfterHashingExactlyN) {
  ASSERT_TRUE(faults_.Add("corrupt-body:2").ok());
  Reply head = Get("/v1/vms/vm-42/images/root.raw", "bytes=0-99", "HEAD");  // no body: not consumed
  Reply bad = Get("/v1/vms/vm-42/images/root.raw", "bytes=0-99");
  EXPECT_EQ(Header(bad, "Content-Digest"), ContentDigestValue(Sha256(bytes_.substr(0, 100))));
  EXPECT_NE(bad.body, bytes_.substr(0, 100));
  Reply streamed = Get("/v1/vms/vm-42/images/root.raw", "bytes=0-");
  EXPECT_TRUE(streamed.corrupt_stream);
  Reply good = Get("/v1/vms/vm-42/images/root.raw", "bytes=0-99");
  EXPECT_EQ(good.body, bytes_.substr(0, 100));
  EXPECT_FALSE(Get("/v1/vms/vm-42/images/root.raw", "bytes=0-").corrupt_stream);
}

TEST_F(ApiTest, TestDelayIsCarriedOnDataRepliesOnly) {
  faults_.set_delay(std::chrono::microseconds(25000));
  EXPECT_EQ(Get("/v1/vms/vm-42/images/root.raw", "bytes=0-9").delay.count(), 25000);
  EXPECT_EQ(Get("/v1/health").delay.count(), 0);
}

TEST_F(ApiTest, GenerationFollowsTheFileThroughListingAndData) {
  auto generation = [&] { return Header(Get("/v1/vms/vm-42/images/b.raw"), "Affinity-Generation"); };
  EXPECT_EQ(generation(), "1");
  {
    int fd = ::open((root_ + "/vm-42/b.raw").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "x", 1), 1);
    ::close(fd);
  }
  EXPECT_EQ(generation(), "2");
  EXPECT_EQ(generation(), "2");
  // Same size, new inode (a replaced file) is a change too.
  testing::WriteRandomFile(root_ + "/vm-42/b.new", 11, 9);
  ASSERT_EQ(::rename((root_ + "/vm-42/b.new").c_str(), (root_ + "/vm-42/b.raw").c_str()), 0);
  auto images = nlohmann::json::parse(Get("/v1/vms/vm-42/images").body);
  EXPECT_EQ(images["images"][0]["name"], "b.raw");
  EXPECT_EQ(images["images"][0]["generation"], 3);
}

// The verified-token memo skips the signature, never the time window: a
// token remembered while valid is refused once it expires. (The clock is
// the test's own: time passing is the one thing here we cannot wait for.)
TEST_F(ApiTest, ARememberedGrantIsStillRefusedOnceItExpires) {
  int64_t now = 1'800'000'000;
  Authorizer authorizer(&key_->verifying_key(), "test-issuer", registry_.get(), [&now] { return now; });
  acl::GrantClaims c;
  c.grant_id = acl::NewGrantId();
  c.issuer = "test-issuer";
  c.holder = kPeerFingerprint;
  c.vm = "vm-42";
  c.images = {"*"};
  c.ops = static_cast<uint8_t>(acl::Operation::kRead);
  c.issued_at = c.not_before = now;
  c.expires = now + 60;
  c.epoch = 1;
  const std::optional<std::string> auth = "Bearer " + acl::SignGrant(*key_, c).value();
  PeerIdentity peer;
  peer.fingerprint = kPeerFingerprint;
  EXPECT_TRUE(std::holds_alternative<acl::GrantClaims>(
      authorizer.Authorize(peer, auth, "vm-42", "root.raw", acl::Operation::kRead)));  // verified, remembered
  now += 60 + acl::kClockSkewSeconds;
  AuthVerdict later = authorizer.Authorize(peer, auth, "vm-42", "root.raw", acl::Operation::kRead);
  ASSERT_TRUE(std::holds_alternative<acl::GrantDenial>(later));
  EXPECT_EQ(std::get<acl::GrantDenial>(later).refusal, acl::GrantRefusal::kExpired);
  // And a remembered token still goes through holder, epoch and scope checks.
  now -= 30;
  peer.fingerprint = std::string(64, 'd');
  AuthVerdict other = authorizer.Authorize(peer, auth, "vm-42", "root.raw", acl::Operation::kRead);
  ASSERT_TRUE(std::holds_alternative<acl::GrantDenial>(other));
  EXPECT_EQ(std::get<acl::GrantDenial>(other).refusal, acl::GrantRefusal::kWrongHolder);
}

}  // namespace
}  // namespace affinity::storage
