// Grant tokens: every way a hostile or broken token can arrive is refused
// with its own reason; a genuine one verifies and round-trips its claims.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "acl/base64url.h"
#include "acl/grant_token.h"

namespace affinity::acl {
namespace {

constexpr int64_t kNow = 1'800'000'000;
const std::string kHolder(64, 'a');

GrantClaims SampleClaims() {
  GrantClaims c;
  c.grant_id = "g-0123456789abcdef01234567";
  c.issuer = "storage-1";
  c.holder = kHolder;
  c.vm = "vm-42";
  c.images = {"root.raw", "data.qcow2"};
  c.ops = static_cast<uint8_t>(Operation::kRead) | static_cast<uint8_t>(Operation::kPrefetch);
  c.migration = "m-1";
  c.issued_at = kNow;
  c.not_before = kNow;
  c.expires = kNow + 600;
  c.epoch = 3;
  return c;
}

class GrantTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = SigningKey::Generate();
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    key_.emplace(std::move(*k));
    options_.key = &key_->verifying_key();
    options_.issuer = "storage-1";
    options_.now = kNow + 10;
  }

  std::string Sign(const GrantClaims& c) {
    auto t = SignGrant(*key_, c);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : std::string();
  }

  // Signs an arbitrary header and payload with the trusted key.
  std::string SignRaw(const std::string& header, const std::string& payload) {
    std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
    auto sig = key_->Sign(input);
    EXPECT_TRUE(sig.ok());
    return input + "." + Base64UrlEncode(*sig);
  }

  std::string Header(const std::string& alg) {
    return nlohmann::json{{"alg", alg}, {"typ", "JWT"}, {"kid", key_->key_id()}}.dump();
  }

  GrantRefusal RefusalOf(std::string_view token) {
    GrantVerdict v = VerifyGrant(token, options_);
    if (std::holds_alternative<GrantClaims>(v)) {
      ADD_FAILURE() << "token was accepted: " << token;
      return GrantRefusal::kMissing;
    }
    const auto& d = std::get<GrantDenial>(v);
    EXPECT_FALSE(d.reason.empty());
    return d.refusal;
  }

  std::optional<SigningKey> key_;
  VerifyOptions options_;
};

TEST_F(GrantTokenTest, GenuineGrantVerifiesAndRoundTripsItsClaims) {
  GrantVerdict v = VerifyGrant(Sign(SampleClaims()), options_);
  ASSERT_TRUE(std::holds_alternative<GrantClaims>(v)) << std::get<GrantDenial>(v).reason;
  EXPECT_EQ(std::get<GrantClaims>(v), SampleClaims());
}

TEST_F(GrantTokenTest, ForgedSignatureIsRefused) {
  std::string token = Sign(SampleClaims());
  // Change the claims but keep the old signature.
  GrantClaims escalated = SampleClaims();
  escalated.ops |= static_cast<uint8_t>(Operation::kWrite);
  std::string other = Sign(escalated);
  std::string forged = other.substr(0, other.rfind('.')) + token.substr(token.rfind('.'));
  EXPECT_EQ(RefusalOf(forged), GrantRefusal::kBadSignature);
  // A flipped bit in the signature itself.
  std::string flipped = token;
  flipped[flipped.rfind('.') + 3] = flipped[flipped.rfind('.') + 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(RefusalOf(flipped), GrantRefusal::kBadSignature);
}

TEST_F(GrantTokenTest, TokenSignedByAnotherKeyIsRefused) {
  auto other = SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  auto token = SignGrant(*other, SampleClaims());
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(RefusalOf(*token), GrantRefusal::kUnknownKey);

  // The other key's signature under our kid: the signature check catches it.
  std::string header = Header("EdDSA");
  std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(ClaimsToJson(SampleClaims()));
  auto sig = other->Sign(input);
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(RefusalOf(input + "." + Base64UrlEncode(*sig)), GrantRefusal::kBadSignature);
}

TEST_F(GrantTokenTest, AlgorithmOtherThanEdDsaIsRefusedBeforeAnyCrypto) {
  const std::string payload = ClaimsToJson(SampleClaims());
  for (const char* alg : {"none", "HS256", "RS256", "ES256", "eddsa", ""}) {
    EXPECT_EQ(RefusalOf(SignRaw(Header(alg), payload)), GrantRefusal::kBadAlgorithm) << alg;
  }
  // alg:none with an empty signature, the classic.
  std::string none = Base64UrlEncode(Header("none")) + "." + Base64UrlEncode(payload) + ".";
  EXPECT_EQ(RefusalOf(none), GrantRefusal::kMalformed);
  // No alg at all, alg of the wrong type, unsupported crit.
  EXPECT_EQ(RefusalOf(SignRaw(nlohmann::json{{"kid", key_->key_id()}}.dump(), payload)), GrantRefusal::kBadAlgorithm);
  EXPECT_EQ(RefusalOf(SignRaw(nlohmann::json{{"alg", 1}, {"kid", key_->key_id()}}.dump(), payload)),
            GrantRefusal::kBadAlgorithm);
  nlohmann::json crit = {{"alg", "EdDSA"}, {"kid", key_->key_id()}, {"crit", {"exp"}}};
  EXPECT_EQ(RefusalOf(SignRaw(crit.dump(), payload)), GrantRefusal::kBadAlgorithm);
}

TEST_F(GrantTokenTest, TimeWindowHonoursTheDocumentedClockSkew) {
  GrantClaims c = SampleClaims();
  std::string token = Sign(c);
  options_.now = c.expires + kClockSkewSeconds;
  EXPECT_EQ(RefusalOf(token), GrantRefusal::kExpired);
  options_.now = c.expires + kClockSkewSeconds - 1;  // inside the skew: still good
  EXPECT_TRUE(std::holds_alternative<GrantClaims>(VerifyGrant(token, options_)));

  c.not_before = kNow + 1000;
  c.expires = kNow + 2000;
  token = Sign(c);
  options_.now = c.not_before - kClockSkewSeconds - 1;
  EXPECT_EQ(RefusalOf(token), GrantRefusal::kNotYetValid);
  options_.now = c.not_before - kClockSkewSeconds;
  EXPECT_TRUE(std::holds_alternative<GrantClaims>(VerifyGrant(token, options_)));
}

TEST_F(GrantTokenTest, WrongIssuerIsRefused) {
  options_.issuer = "storage-2";
  EXPECT_EQ(RefusalOf(Sign(SampleClaims())), GrantRefusal::kWrongIssuer);
}

TEST_F(GrantTokenTest, TruncatedGarbageAndOversizedTokensAreRefused) {
  std::string token = Sign(SampleClaims());
  EXPECT_EQ(RefusalOf(""), GrantRefusal::kMissing);
  for (size_t cut : {size_t{1}, token.find('.'), token.find('.') + 1, token.rfind('.'), token.size() - 1}) {
    GrantRefusal r = RefusalOf(token.substr(0, cut));
    EXPECT_TRUE(r == GrantRefusal::kMalformed || r == GrantRefusal::kBadSignature) << cut;
  }
  EXPECT_EQ(RefusalOf("not a token"), GrantRefusal::kMalformed);
  EXPECT_EQ(RefusalOf("a.b.c.d"), GrantRefusal::kMalformed);
  EXPECT_EQ(RefusalOf(".."), GrantRefusal::kMalformed);
  EXPECT_EQ(RefusalOf(token + "="), GrantRefusal::kMalformed);        // padding is not canonical
  EXPECT_EQ(RefusalOf(" " + token), GrantRefusal::kMalformed);        // whitespace
  EXPECT_EQ(RefusalOf(std::string(kMaxTokenBytes + 1, 'A')), GrantRefusal::kOversized);
  EXPECT_EQ(RefusalOf(SignRaw("[]", ClaimsToJson(SampleClaims()))), GrantRefusal::kMalformed);
  EXPECT_EQ(RefusalOf(SignRaw(Header("EdDSA"), "{\"jti\":")), GrantRefusal::kMalformed);
}

TEST_F(GrantTokenTest, ClaimsAreCheckedStrictly) {
  auto refused = [&](auto mutate) {
    nlohmann::json j = nlohmann::json::parse(ClaimsToJson(SampleClaims()));
    mutate(j);
    return RefusalOf(SignRaw(Header("EdDSA"), j.dump()));
  };
  EXPECT_EQ(refused([](auto& j) { j.erase("holder"); }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["holder"] = "ABC"; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["vm"] = ".."; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["images"] = nlohmann::json::array(); }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["images"] = {"../etc"}; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["ops"] = {"read", "admin"}; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["exp"] = j["nbf"]; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["exp"] = 1.5e9; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["exp"] = -1; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["exp"] = 18446744073709551615ull; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["epoch"] = -3; }), GrantRefusal::kMalformed);
  EXPECT_EQ(refused([](auto& j) { j["mig"] = "m 1"; }), GrantRefusal::kMalformed);
  // Unknown claims are ignored (RFC 7519 §4).
  nlohmann::json j = nlohmann::json::parse(ClaimsToJson(SampleClaims()));
  j["future_claim"] = {1, 2};
  EXPECT_TRUE(std::holds_alternative<GrantClaims>(VerifyGrant(SignRaw(Header("EdDSA"), j.dump()), options_)));
}

TEST_F(GrantTokenTest, DecodeShowsClaimsWithoutTrustingThem) {
  auto other = SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  auto token = SignGrant(*other, SampleClaims());
  ASSERT_TRUE(token.ok());
  auto decoded = DecodeGrant(*token);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->claims, SampleClaims());
  EXPECT_NE(decoded->header_json.find("EdDSA"), std::string::npos);
  EXPECT_FALSE(DecodeGrant("x.y").ok());
}

TEST_F(GrantTokenTest, ScopeHelpers) {
  GrantClaims c = SampleClaims();
  EXPECT_TRUE(c.CoversImage("root.raw"));
  EXPECT_FALSE(c.CoversImage("other.raw"));
  c.images = {"*"};
  EXPECT_TRUE(c.CoversImage("other.raw"));
  EXPECT_TRUE(c.Allows(Operation::kPrefetch));
  EXPECT_FALSE(c.Allows(Operation::kWrite));
  EXPECT_EQ(OperationListString(c.ops), "read,prefetch");
  auto ops = ParseOperationList("write,read");
  ASSERT_TRUE(ops.ok());
  EXPECT_EQ(*ops, 5);
  EXPECT_FALSE(ParseOperationList("").ok());
  EXPECT_FALSE(ParseOperationList("read,,write").ok());
  EXPECT_NE(NewGrantId(), NewGrantId());
}

TEST(Base64UrlTest, Rfc4648VectorsAndCanonicalForm) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
      {"\xfb\xff", "-_8"}};
  for (const auto& [raw, text] : vectors) {
    EXPECT_EQ(Base64UrlEncode(raw), text);
    auto back = Base64UrlDecode(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, raw);
  }
  EXPECT_FALSE(Base64UrlDecode("Zg==").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("Zh").has_value());    // non-zero spare bits
  EXPECT_FALSE(Base64UrlDecode("Z").has_value());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("+/8").has_value());   // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Zm 9v").has_value());
}

}  // namespace
}  // namespace affinity::acl
