// Grant keys on disk and holder fingerprints, checked against the openssl CLI.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "acl/holder_fingerprint.h"
#include "acl/signing_key.h"
#include "tests/support/test_env.h"

namespace affinity::acl {
namespace {

std::string CommandOutput(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  return out;
}

TEST(GrantKeysTest, SavedKeysLoadBackAndSignForEachOther) {
  testing::TempDir dir;
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(key->SavePem(dir / "grant.key", dir / "grant.pub").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "grant.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Never overwrite a key.
  EXPECT_FALSE(key->SavePem(dir / "grant.key", dir / "grant2.pub").ok());

  auto loaded = SigningKey::LoadPem(dir / "grant.key");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto pub = VerifyingKey::LoadPem(dir / "grant.pub");
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(loaded->key_id(), key->key_id());
  EXPECT_EQ(pub->key_id(), key->key_id());
  auto sig = loaded->Sign("message");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(pub->Verify("message", *sig));
  EXPECT_FALSE(pub->Verify("messagE", *sig));
  EXPECT_FALSE(pub->Verify("message", sig->substr(1)));
}

TEST(GrantKeysTest, KeysOfOtherTypesAndNonKeysAreRefused) {
  testing::TempDir dir;
  ASSERT_EQ(std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + (dir / "ec.key") +
                         " 2>/dev/null && openssl pkey -in " + (dir / "ec.key") + " -pubout -out " +
                         (dir / "ec.pub") + " 2>/dev/null")
                            .c_str()),
            0);
  auto ec = SigningKey::LoadPem(dir / "ec.key");
  ASSERT_FALSE(ec.ok());
  EXPECT_NE(ec.status().message().find("not an Ed25519"), std::string::npos) << ec.status().message();
  EXPECT_FALSE(VerifyingKey::LoadPem(dir / "ec.pub").ok());
  EXPECT_FALSE(VerifyingKey::FromPem("garbage", "test").ok());
  EXPECT_FALSE(SigningKey::LoadPem(dir / "missing.key").ok());
  // An Ed25519 key made by the openssl CLI is accepted.
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + (dir / "ed.key") + " 2>/dev/null").c_str()), 0);
  EXPECT_TRUE(SigningKey::LoadPem(dir / "ed.key").ok());
}

TEST(GrantKeysTest, HolderFingerprintIsSha256OfTheCertificatePublicKey) {
  testing::TempDir dir;
  testing::Certs certs = testing::GenerateCerts(dir / "certs");
  auto fp = HolderFingerprintOfFile(certs.client_cert);
  ASSERT_TRUE(fp.ok()) << fp.status().ToString();
  EXPECT_TRUE(IsFingerprint(*fp));
  std::string expected = CommandOutput("openssl x509 -in " + certs.client_cert +
                             " -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1");
  EXPECT_EQ(*fp + "\n", expected);
  auto other = HolderFingerprintOfFile(certs.client2_cert);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*fp, *other);
  EXPECT_FALSE(HolderFingerprintOfFile(certs.client_key).ok());
  EXPECT_FALSE(IsFingerprint(std::string(64, 'A')));
}

}  // namespace
}  // namespace affinity::acl
