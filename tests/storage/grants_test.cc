// Grants, ownership and the migration handshake against the real
// affinity-storaged over real mutual TLS (docs/grants.md): every hostile or
// stale grant is refused with its own code, the state machine refuses
// illegal transitions and survives kill -9, and commit names exactly the
// blocks the source wrote after the destination fetched them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "acl/base64url.h"
#include "acl/grant_token.h"
#include "tests/support/curl_test_client.h"
#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {

constexpr uint64_t kImageSize = 1 << 20;
constexpr uint64_t kBlock = 64 * 1024;  // the storage host's tracking block

class GrantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = GenerateCerts(dir_ / "certs");
    root_ = dir_ / "root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-1").c_str(), 0755), 0);
    WriteRandomFile(root_ + "/vm-1/root.raw", kImageSize, 11);
    WriteRandomFile(root_ + "/vm-1/data.raw", kImageSize, 12);
    StoragedOptions o;
    o.root = root_;
    o.state_dir = dir_ / "state";
    ASSERT_EQ(::mkdir(o.state_dir.c_str(), 0700), 0);
    o.certs = &certs_;
    server_ = std::make_unique<StoragedProcess>(o);
    ASSERT_NO_FATAL_FAILURE(server_->Start());
    dest_fp_ = FingerprintOf(certs_.client_cert);
    source_fp_ = FingerprintOf(certs_.client2_cert);
  }

  std::string Url(const std::string& path) const { return server_->url() + path; }
  std::string ImageUrl(const std::string& image = "root.raw") const { return Url("/v1/vms/vm-1/images/" + image); }

  // Fresh clients each time: a restarted server means new connections anyway.
  HttpReply As(const std::string& cert, const std::string& key, const std::string& url, RequestOptions o) {
    Client c(certs_, cert, key);
    return c.Perform(url, o);
  }
  HttpReply Admin(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) {
    RequestOptions o;
    o.method = method;
    if (!body.is_null()) o.body = body.dump();
    return As(certs_.admin_cert, certs_.admin_key, Url(path), o);
  }
  // GET (or PUT) as the destination (client_cert) with `token`.
  HttpReply Dest(const std::string& token, const std::string& url, const std::string& range = "0-99") {
    RequestOptions o;
    o.range = range;
    o.headers = {"Authorization: Bearer " + token};
    return As(certs_.client_cert, certs_.client_key, url, o);
  }
  HttpReply Put(const std::string& cert, const std::string& key, const std::string& token, uint64_t offset,
                const std::string& bytes, const std::string& image = "root.raw") {
    RequestOptions o;
    o.method = "PUT";
    o.body = bytes;
    o.headers = {"Authorization: Bearer " + token,
                 "Content-Range: bytes " + std::to_string(offset) + "-" + std::to_string(offset + bytes.size() - 1) +
                     "/*"};
    return As(cert, key, ImageUrl(image), o);
  }
  std::string Mint(GrantSpec g) {
    if (g.holder_cert.empty()) g.holder_cert = certs_.client_cert;
    if (g.vm.empty()) g.vm = "vm-1";
    return MintGrant(certs_, g);
  }
  void ExpectRefused(const HttpReply& r, long status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers.count("affinity-error") ? r.headers.at("affinity-error") : "", code) << r.body;
    auto j = Json(r);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"], code);
    EXPECT_FALSE(j["reason"].get<std::string>().empty());
  }
  // Begins a migration of vm-1 to the destination; returns (id, grant).
  std::pair<std::string, std::string> Begin(int ttl = 600) {
    auto r = Admin("POST", "/v1/migrations", {{"vm", "vm-1"}, {"to", dest_fp_}, {"ttl", ttl}});
    EXPECT_EQ(r.status, 200) << r.body;
    auto j = Json(r);
    if (!j.is_object() || !j.contains("migration")) return {};
    return {j["migration"]["id"].get<std::string>(), j["grant"].get<std::string>()};
  }
  std::string StateOf(const std::string& id) {
    auto j = Json(Admin("GET", "/v1/migrations/" + id));
    return j.is_object() && j.contains("migration") ? j["migration"]["state"].get<std::string>() : "?";
  }
  void SetOwner(const std::string& fp) {
    ASSERT_EQ(Admin("PUT", "/v1/vms/vm-1/owner", {{"holder", fp}}).status, 200);
  }
  uint64_t Epoch() { return Json(Admin("GET", "/v1/vms/vm-1/owner"))["epoch"].get<uint64_t>(); }

  TempDir dir_;
  Certs certs_;
  std::string root_, dest_fp_, source_fp_;
  std::unique_ptr<StoragedProcess> server_;
};

TEST_F(GrantsTest, GenuineGrantReadsAndMissingOrGarbageGrantsAre401) {
  auto ok = Dest(Mint({}), ImageUrl());
  EXPECT_EQ(ok.status, 206) << ok.body;
  EXPECT_EQ(ok.body, ReadWholeFile(root_ + "/vm-1/root.raw").substr(0, 100));
  Client bare(certs_, certs_.client_cert, certs_.client_key);
  RequestOptions o;
  o.range = "0-9";
  ExpectRefused(bare.Perform(ImageUrl(), o), 401, "missing_grant");
  ExpectRefused(Dest("garbage", ImageUrl()), 401, "malformed_grant");
  const std::string token = Mint({});
  ExpectRefused(Dest(token.substr(0, token.size() / 2), ImageUrl()), 401, "malformed_grant");
  ExpectRefused(Dest(token.substr(0, token.rfind('.')), ImageUrl()), 401, "malformed_grant");
  ExpectRefused(Dest(std::string(9000, 'A'), ImageUrl()), 401, "oversized_grant");
  // Not a Bearer token at all.
  o.headers = {"Authorization: Basic dXNlcjpwYXNz"};
  ExpectRefused(bare.Perform(ImageUrl(), o), 401, "missing_grant");
}

TEST_F(GrantsTest, ForgedOtherKeyAndAlgorithmChangedGrantsAre401) {
  const std::string token = Mint({});
  // Forged: escalate the claims (add write, every VM image) and keep the signature.
  auto dot1 = token.find('.'), dot2 = token.rfind('.');
  auto claims = nlohmann::json::parse(*acl::Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1)));
  claims["ops"] = {"read", "prefetch", "write"};
  std::string forged = token.substr(0, dot1) + "." + acl::Base64UrlEncode(claims.dump()) + token.substr(dot2);
  ExpectRefused(Dest(forged, ImageUrl()), 401, "bad_signature");
  // Signed by another Ed25519 key.
  auto other = acl::SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  auto decoded = acl::DecodeGrant(token);
  ASSERT_TRUE(decoded.ok());
  ExpectRefused(Dest(acl::SignGrant(*other, decoded->claims).value(), ImageUrl()), 401, "unknown_key");
  // alg changed to none / HS256 (header re-encoded, original signature or none).
  for (const char* alg : {"none", "HS256", "ES256"}) {
    auto header = nlohmann::json::parse(*acl::Base64UrlDecode(token.substr(0, dot1)));
    header["alg"] = alg;
    std::string changed = acl::Base64UrlEncode(header.dump()) + token.substr(dot1);
    ExpectRefused(Dest(changed, ImageUrl()), 401, "bad_algorithm");
  }
}

TEST_F(GrantsTest, ExpiredAndNotYetValidGrantsAre401) {
  GrantSpec expired;
  expired.not_before_offset = -1000;
  expired.ttl_seconds = 100;  // ended 900 s ago, far beyond the clock skew
  ExpectRefused(Dest(Mint(expired), ImageUrl()), 401, "expired");
  GrantSpec future;
  future.not_before_offset = 1000;
  ExpectRefused(Dest(Mint(future), ImageUrl()), 401, "not_yet_valid");
}

TEST_F(GrantsTest, AValidGrantOverAnotherClientCertificateIsWrongHolder) {
  const std::string stolen = Mint({});  // the destination's grant...
  RequestOptions o;
  o.range = "0-9";
  o.headers = {"Authorization: Bearer " + stolen};
  // ...presented by another host with its own (valid) certificate.
  ExpectRefused(As(certs_.client2_cert, certs_.client2_key, ImageUrl(), o), 403, "wrong_holder");
}

TEST_F(GrantsTest, ScopeIsEnforcedForImagesVmsAndOperations) {
  GrantSpec only_root;
  only_root.images = {"root.raw"};
  const std::string token = Mint(only_root);
  EXPECT_EQ(Dest(token, ImageUrl("root.raw")).status, 206);
  ExpectRefused(Dest(token, ImageUrl("data.raw")), 403, "out_of_scope");
  // The listing shows only what the grant covers.
  auto listing = Json(Dest(token, Url("/v1/vms/vm-1/images"), ""));
  ASSERT_EQ(listing["images"].size(), 1u) << listing.dump();
  EXPECT_EQ(listing["images"][0]["name"], "root.raw");
  GrantSpec other_vm;
  other_vm.vm = "vm-2";
  ExpectRefused(Dest(Mint(other_vm), ImageUrl()), 403, "out_of_scope");
  // A prefetch-only grant cannot make demand reads, and nothing but write may write.
  GrantSpec prefetch_only;
  prefetch_only.ops = "prefetch";
  const std::string prefetch_token = Mint(prefetch_only);
  ExpectRefused(Dest(prefetch_token, ImageUrl()), 403, "out_of_scope");
  RequestOptions prefetch;
  prefetch.range = "0-99";
  prefetch.headers = {"Authorization: Bearer " + prefetch_token, "Affinity-Purpose: prefetch"};
  EXPECT_EQ(As(certs_.client_cert, certs_.client_key, ImageUrl(), prefetch).status, 206);
  // `read` covers prefetch-purpose reads (affinityfs's read-ahead) too.
  GrantSpec read_only;
  read_only.ops = "read";
  prefetch.headers = {"Authorization: Bearer " + Mint(read_only), "Affinity-Purpose: prefetch"};
  EXPECT_EQ(As(certs_.client_cert, certs_.client_key, ImageUrl(), prefetch).status, 206);
  prefetch.headers[1] = "Affinity-Purpose: sideways";
  ExpectRefused(As(certs_.client_cert, certs_.client_key, ImageUrl(), prefetch), 400, "bad_request");
  SetOwner(dest_fp_);
  GrantSpec read_prefetch;
  read_prefetch.epoch = Epoch();
  ExpectRefused(Put(certs_.client_cert, certs_.client_key, Mint(read_prefetch), 0, "x"), 403, "out_of_scope");
}

TEST_F(GrantsTest, OnlyTheOwnerWritesAndWritesAreDurableAndExact) {
  SetOwner(source_fp_);
  const uint64_t epoch = Epoch();
  // A write grant for a non-owner is never issued...
  auto issued = Admin("POST", "/v1/grants", {{"holder", dest_fp_}, {"vm", "vm-1"}, {"ops", {"read", "write"}}});
  ExpectRefused(issued, 403, "not_owner");
  // ...and one made anyway (a rogue issuer with the key) is refused at the write.
  GrantSpec rogue;
  rogue.ops = "read,write";
  rogue.epoch = epoch;
  ExpectRefused(Put(certs_.client_cert, certs_.client_key, Mint(rogue), 0, "evil"), 403, "not_owner");
  // The owner's write grant, issued by the storage host.
  auto owner = Admin("POST", "/v1/grants", {{"holder", source_fp_}, {"vm", "vm-1"}, {"ops", {"read", "write"}}});
  ASSERT_EQ(owner.status, 200) << owner.body;
  const std::string token = Json(owner)["grant"].get<std::string>();
  const std::string bytes(100000, 'Z');
  auto put = Put(certs_.client2_cert, certs_.client2_key, token, 70000, bytes);
  ASSERT_EQ(put.status, 204) << put.body;
  std::string file = ReadWholeFile(root_ + "/vm-1/root.raw");
  ASSERT_EQ(file.size(), kImageSize) << "a write never grows the image";
  EXPECT_EQ(file.substr(70000, bytes.size()), bytes);
  // The write did not bump the image generation (its blocks are tracked instead).
  GrantSpec reader;
  reader.epoch = epoch;
  auto listing = Json(Dest(Mint(reader), Url("/v1/vms/vm-1/images"), ""));
  ASSERT_EQ(listing["images"].size(), 2u) << listing.dump();
  EXPECT_EQ(listing["images"][1]["name"], "root.raw");
  EXPECT_EQ(listing["images"][1]["generation"], 1) << listing.dump();
  // A grant of the epoch before the owner was set is stale.
  ExpectRefused(Dest(Mint({}), ImageUrl()), 403, "stale_epoch");
  // Beyond the end: 416; a body that does not match Content-Range: 400.
  ExpectRefused(Put(certs_.client2_cert, certs_.client2_key, token, kImageSize - 1, "ab"), 416,
                "range_not_satisfiable");
  RequestOptions o;
  o.method = "PUT";
  o.body = "abc";
  o.headers = {"Authorization: Bearer " + token, "Content-Range: bytes 0-9/*"};
  ExpectRefused(As(certs_.client2_cert, certs_.client2_key, ImageUrl(), o), 400, "bad_request");
}

TEST_F(GrantsTest, RevokedGrantsAndAbortedMigrationsAreRefusedFromThatInstant) {
  auto issued = Admin("POST", "/v1/grants", {{"holder", dest_fp_}, {"vm", "vm-1"}, {"ops", {"read"}}, {"ttl", 600}});
  ASSERT_EQ(issued.status, 200) << issued.body;
  const std::string token = Json(issued)["grant"].get<std::string>();
  const std::string id = Json(issued)["claims"]["jti"].get<std::string>();
  EXPECT_EQ(Dest(token, ImageUrl()).status, 206);
  ASSERT_EQ(Admin("POST", "/v1/grants/" + id + "/revoke").status, 200);
  ExpectRefused(Dest(token, ImageUrl()), 403, "revoked");
  // Renewal of a revoked grant is refused too.
  RequestOptions renew;
  renew.method = "POST";
  renew.headers = {"Authorization: Bearer " + token};
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/grants/renew"), renew), 403, "revoked");

  auto [mig, grant] = Begin();
  EXPECT_EQ(Dest(grant, ImageUrl()).status, 206);
  ASSERT_EQ(Admin("POST", "/v1/migrations/" + mig + "/abort").status, 200);
  ExpectRefused(Dest(grant, ImageUrl()), 403, "revoked");
  // The destination may still ask about its migration, to learn why.
  RequestOptions status;
  status.headers = {"Authorization: Bearer " + grant};
  auto st = As(certs_.client_cert, certs_.client_key, Url("/v1/migrations/" + mig), status);
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_EQ(Json(st)["migration"]["state"], "aborted");
}

TEST_F(GrantsTest, IllegalTransitionsAreRefusedWithConflict) {
  auto [first, grant] = Begin();
  ASSERT_FALSE(first.empty());
  ExpectRefused(Admin("POST", "/v1/migrations", {{"vm", "vm-1"}, {"to", source_fp_}}), 409, "conflict");
  ExpectRefused(Admin("PUT", "/v1/vms/vm-1/owner", {{"holder", source_fp_}}), 409, "conflict");
  ASSERT_EQ(Admin("POST", "/v1/migrations/" + first + "/abort").status, 200);
  auto after_abort = Admin("POST", "/v1/migrations/" + first + "/commit");
  ExpectRefused(after_abort, 409, "conflict");
  EXPECT_NE(Json(after_abort)["reason"].get<std::string>().find("aborted"), std::string::npos) << after_abort.body;
  ExpectRefused(Admin("POST", "/v1/migrations/" + first + "/abort"), 409, "conflict");
  auto [second, grant2] = Begin();
  ASSERT_EQ(Admin("POST", "/v1/migrations/" + second + "/commit").status, 200);
  ExpectRefused(Admin("POST", "/v1/migrations/" + second + "/commit"), 409, "conflict");
  ExpectRefused(Admin("POST", "/v1/migrations/" + second + "/abort"), 409, "conflict");
  ExpectRefused(Admin("POST", "/v1/migrations/m-nonexistent/commit"), 404, "not_found");
  // Migrating to the host that already owns it is refused.
  ExpectRefused(Admin("POST", "/v1/migrations", {{"vm", "vm-1"}, {"to", dest_fp_}}), 409, "conflict");
  // Bad bodies.
  ExpectRefused(Admin("POST", "/v1/migrations", {{"vm", "vm-1"}, {"to", "not-a-fingerprint"}}), 400, "bad_request");
  RequestOptions garbage;
  garbage.method = "POST";
  garbage.body = "{not json";
  ExpectRefused(As(certs_.admin_cert, certs_.admin_key, Url("/v1/migrations"), garbage), 400, "bad_request");
}

TEST_F(GrantsTest, ControlPlaneNeedsTheAdminCertificateNeverADataGrant) {
  RequestOptions o;
  o.method = "POST";
  o.body = nlohmann::json{{"vm", "vm-1"}, {"to", dest_fp_}}.dump();
  o.headers = {"Authorization: Bearer " + Mint({})};
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/migrations"), o), 403, "admin_required");
  o.body = nlohmann::json{{"holder", dest_fp_}, {"vm", "vm-1"}, {"ops", {"read"}}}.dump();
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/grants"), o), 403, "admin_required");
  RequestOptions get;
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/vms"), get), 403, "admin_required");
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/metrics"), get), 403, "admin_required");
  // An admin certificate has no data access without a grant of its own.
  get.range = "0-9";
  ExpectRefused(As(certs_.admin_cert, certs_.admin_key, ImageUrl(), get), 401, "missing_grant");
}

TEST_F(GrantsTest, CommitNamesExactlyTheBlocksWrittenAfterTheDestinationFetchedThem) {
  SetOwner(source_fp_);
  auto owner = Admin("POST", "/v1/grants", {{"holder", source_fp_}, {"vm", "vm-1"}, {"ops", {"read", "write"}}});
  const std::string source_grant = Json(owner)["grant"].get<std::string>();
  // Written before the migration: not stale whatever happens next.
  ASSERT_EQ(Put(certs_.client2_cert, certs_.client2_key, source_grant, 0, "early").status, 204);
  auto [mig, dest_grant] = Begin();
  // The destination prefetches blocks 0..3 of root.raw and block 0 of data.raw.
  ASSERT_EQ(Dest(dest_grant, ImageUrl(), "0-" + std::to_string(4 * kBlock - 1)).status, 206);
  ASSERT_EQ(Dest(dest_grant, ImageUrl("data.raw"), "0-99").status, 206);
  // The source keeps running: it writes into block 1, into block 3 (across
  // into block 4, never fetched) and into block 9 (never fetched).
  ASSERT_EQ(Put(certs_.client2_cert, certs_.client2_key, source_grant, kBlock + 5, "late").status, 204);
  ASSERT_EQ(Put(certs_.client2_cert, certs_.client2_key, source_grant, 4 * kBlock - 2, "span").status, 204);
  ASSERT_EQ(Put(certs_.client2_cert, certs_.client2_key, source_grant, 9 * kBlock, "far").status, 204);
  // Fetched again after the write: block 1 is still listed (the older copy may be cached).
  ASSERT_EQ(Dest(dest_grant, ImageUrl(), "0-" + std::to_string(2 * kBlock - 1)).status, 206);

  auto commit = Admin("POST", "/v1/migrations/" + mig + "/commit");
  ASSERT_EQ(commit.status, 200) << commit.body;
  auto j = Json(commit);
  EXPECT_EQ(j["migration"]["state"], "committed");
  EXPECT_EQ(j["migration"]["served_blocks"], 5) << "4 blocks of root.raw and 1 of data.raw";
  nlohmann::json expected = nlohmann::json::array();
  expected.push_back({{"image", "root.raw"}, {"offset", kBlock}, {"length", kBlock}});
  expected.push_back({{"image", "root.raw"}, {"offset", 3 * kBlock}, {"length", kBlock}});
  EXPECT_EQ(j["stale"], expected) << commit.body;

  // Ownership moved: the source's grant is dead, its writes are refused.
  ExpectRefused(Put(certs_.client2_cert, certs_.client2_key, source_grant, 0, "after"), 403, "stale_epoch");
  // The destination renews into the owner's grant and may write.
  RequestOptions renew;
  renew.method = "POST";
  renew.headers = {"Authorization: Bearer " + dest_grant};
  auto renewed = As(certs_.client_cert, certs_.client_key, Url("/v1/grants/renew"), renew);
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  auto claims = Json(renewed)["claims"];
  EXPECT_EQ(claims["ops"], nlohmann::json({"read", "prefetch", "write"}));
  EXPECT_EQ(claims["jti"], acl::DecodeGrant(dest_grant).value().claims.grant_id) << "same grant, renewed";
  const std::string owner_grant = Json(renewed)["grant"].get<std::string>();
  EXPECT_EQ(Put(certs_.client_cert, certs_.client_key, owner_grant, 0, "mine").status, 204);
  // The source cannot renew its way back.
  renew.headers = {"Authorization: Bearer " + source_grant};
  ExpectRefused(As(certs_.client2_cert, certs_.client2_key, Url("/v1/grants/renew"), renew), 403, "stale_epoch");
  // The snapshot does not grow with the new owner's writes.
  RequestOptions status;
  status.headers = {"Authorization: Bearer " + owner_grant};
  // Reads after the commit are the owner's own: no longer tracked under the migration.
  ASSERT_EQ(Dest(owner_grant, ImageUrl(), "0-" + std::to_string(8 * kBlock - 1)).status, 206);
  auto st = As(certs_.client_cert, certs_.client_key, Url("/v1/migrations/" + mig), status);
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_EQ(Json(st)["stale"], expected);
  EXPECT_EQ(Json(st)["migration"]["served_blocks"], 5);
}

TEST_F(GrantsTest, StateSurvivesKillNineInEveryState) {
  SetOwner(source_fp_);
  auto [mig, grant] = Begin();
  ASSERT_EQ(Dest(grant, ImageUrl()).status, 206);
  server_->Kill();
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(StateOf(mig), "begun");
  EXPECT_EQ(Dest(grant, ImageUrl()).status, 206) << "the grant still works after the restart";
  ExpectRefused(Admin("POST", "/v1/migrations", {{"vm", "vm-1"}, {"to", dest_fp_}}), 409, "conflict");
  auto source = Admin("POST", "/v1/grants", {{"holder", source_fp_}, {"vm", "vm-1"}, {"ops", {"write"}}});
  const std::string source_grant = Json(source)["grant"].get<std::string>();
  ASSERT_EQ(Put(certs_.client2_cert, certs_.client2_key, source_grant, 10, "x").status, 204);
  ASSERT_EQ(Admin("POST", "/v1/migrations/" + mig + "/commit").status, 200);
  server_->Kill();
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(StateOf(mig), "committed");
  EXPECT_EQ(Json(Admin("GET", "/v1/vms/vm-1/owner"))["owner"], dest_fp_);
  ExpectRefused(Put(certs_.client2_cert, certs_.client2_key, source_grant, 10, "y"), 403, "stale_epoch");
  auto stale = Json(Admin("GET", "/v1/migrations/" + mig))["stale"];
  ASSERT_EQ(stale.size(), 1u) << stale.dump();
  EXPECT_EQ(stale[0]["offset"], 0);
}

TEST_F(GrantsTest, AMigrationNotCommittedInTimeExpiresAndItsGrantDies) {
  auto [mig, grant] = Begin(/*ttl=*/1);
  ASSERT_EQ(Dest(grant, ImageUrl()).status, 206);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (StateOf(mig) != "expired" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(StateOf(mig), "expired");
  ExpectRefused(Dest(grant, ImageUrl()), 403, "revoked");
  ExpectRefused(Admin("POST", "/v1/migrations/" + mig + "/commit"), 409, "conflict");
  // The VM is free for a new migration, and an expiry survives a restart.
  server_->Kill();
  ASSERT_NO_FATAL_FAILURE(server_->Start());
  EXPECT_EQ(StateOf(mig), "expired");
  auto again = Begin();
  EXPECT_FALSE(again.first.empty());
}

TEST_F(GrantsTest, AccessUploadsAreIdempotentScopedAndBoundToTheirHost) {
  auto post = [&](const std::string& cert, const std::string& key, const std::string& token, const std::string& body) {
    RequestOptions o;
    o.method = "POST";
    o.body = body;
    o.headers = {"Authorization: Bearer " + token, "Content-Type: application/json"};
    return As(cert, key, Url("/v1/vms/vm-1/accesses"), o);
  };
  const std::string batch =
      R"({"session":"s-0123456789abcdef01234567","session_start_ms":1795530591000,)"
      R"("records":[[0,"root.raw",0,4096,"R",10],[1,"root.raw",65536,4096,"R",250]]})";
  const std::string token = Mint({});
  auto first = post(certs_.client_cert, certs_.client_key, token, batch);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(Json(first), nlohmann::json({{"accepted", 2}, {"duplicates", 0}}));
  auto again = post(certs_.client_cert, certs_.client_key, token, batch);  // a reply was lost: sent again
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Json(again), nlohmann::json({{"accepted", 0}, {"duplicates", 2}}));
  // Another host cannot add to this session.
  GrantSpec other;
  other.holder_cert = certs_.client2_cert;
  ExpectRefused(post(certs_.client2_cert, certs_.client2_key, Mint(other), batch), 403, "forbidden");
  // Images outside the grant, malformed batches, no grant.
  GrantSpec data_only;
  data_only.images = {"data.raw"};
  ExpectRefused(post(certs_.client_cert, certs_.client_key, Mint(data_only), batch), 403, "out_of_scope");
  ExpectRefused(post(certs_.client_cert, certs_.client_key, token, R"({"session":"s-1"})"), 400, "bad_request");
  ExpectRefused(post(certs_.client_cert, certs_.client_key, token,
                     R"({"session":"s-1","session_start_ms":0,"records":[[0,"../x",0,1,"R",0]]})"),
                400, "bad_request");
  ExpectRefused(post(certs_.client_cert, certs_.client_key, "", batch), 401, "missing_grant");
  // The admin sees the session and its two records.
  auto sessions = Admin("GET", "/v1/vms/vm-1/sessions");
  ASSERT_EQ(sessions.status, 200) << sessions.body;
  auto j = Json(sessions)["sessions"];
  ASSERT_EQ(j.size(), 1u) << sessions.body;
  EXPECT_EQ(j[0]["records"], 2);
  EXPECT_EQ(j[0]["holder"], dest_fp_);
  RequestOptions get;
  ExpectRefused(As(certs_.client_cert, certs_.client_key, Url("/v1/vms/vm-1/sessions"), get), 403, "admin_required");
}

}  // namespace
}  // namespace affinity::testing
