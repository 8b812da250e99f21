// affinityctl keygen / fingerprint / owner / grant / migrate: the real binary
// against a real affinity-storaged over mutual TLS, with an admin
// certificate (and a data certificate, which must be refused).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "acl/grant_token.h"
#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {

struct CtlRun {
  int status = -1;
  std::string out;  // stdout + stderr
};

class AffinityctlAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = GenerateCerts(dir_ / "certs");
    const std::string root = dir_ / "root";
    ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root + "/vm-1").c_str(), 0755), 0);
    WriteRandomFile(root + "/vm-1/root.raw", 1 << 20, 3);
    StoragedOptions o;
    o.root = root;
    o.state_dir = dir_ / "state";
    ASSERT_EQ(::mkdir(o.state_dir.c_str(), 0700), 0);
    o.certs = &certs_;
    server_ = std::make_unique<StoragedProcess>(o);
    ASSERT_NO_FATAL_FAILURE(server_->Start());
  }

  // affinityctl ARGS..., connected as `cert` (the admin by default).
  CtlRun Ctl(std::vector<std::string> args, bool connect = true, const std::string& cert = "",
          const std::string& key = "") {
    std::vector<std::string> argv = {BinaryPath("affinityctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    if (connect) {
      for (const std::string& a : {std::string("--storage"), server_->url(), std::string("--ca"), certs_.ca_cert,
                                   std::string("--cert"), cert.empty() ? certs_.admin_cert : cert,
                                   std::string("--key"), key.empty() ? certs_.admin_key : key}) {
        argv.push_back(a);
      }
    }
    CtlRun r;
    Subprocess p;
    const std::string log = dir_ / ("ctl." + std::to_string(++runs_) + ".log");
    EXPECT_TRUE(p.Start(argv, log));
    r.status = p.Wait(std::chrono::seconds(30));
    r.out = ReadWholeFile(log);
    return r;
  }

  static std::string MigrationId(const std::string& out) {
    std::smatch m;
    return std::regex_search(out, m, std::regex("m-[0-9a-f]{24}")) ? m.str() : std::string();
  }

  TempDir dir_;
  Certs certs_;
  std::unique_ptr<StoragedProcess> server_;
  int runs_ = 0;
};

TEST_F(AffinityctlAdminTest, KeygenWritesAPairAndNeverOverwrites) {
  CtlRun r = Ctl({"keygen", "--out", dir_ / "keys"}, false);
  ASSERT_EQ(r.status, 0) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "keys/grant.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(acl::SigningKey::LoadPem(dir_ / "keys/grant.key").ok());
  EXPECT_TRUE(acl::VerifyingKey::LoadPem(dir_ / "keys/grant.pub").ok());
  const std::string before = ReadWholeFile(dir_ / "keys/grant.key");
  r = Ctl({"keygen", "--out", dir_ / "keys"}, false);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("never overwritten"), std::string::npos) << r.out;
  EXPECT_EQ(ReadWholeFile(dir_ / "keys/grant.key"), before);
}

TEST_F(AffinityctlAdminTest, FingerprintMatchesTheCertificateKey) {
  CtlRun r = Ctl({"fingerprint", certs_.client_cert}, false);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, FingerprintOf(certs_.client_cert) + "\n");
  r = Ctl({"fingerprint", certs_.client_key}, false);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("no PEM certificate"), std::string::npos) << r.out;
}

TEST_F(AffinityctlAdminTest, GrantsAreIssuedInspectedVerifiedAndRefusedClearly) {
  CtlRun r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read,prefetch",
               "--out", dir_ / "g"});
  ASSERT_EQ(r.status, 0) << r.out;
  r = Ctl({"grant", "inspect", "--file", dir_ / "g", "--key", certs_.grant_pub}, false);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("signature   valid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(FingerprintOf(certs_.client_cert)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("read,prefetch"), std::string::npos) << r.out;
  // Without a key: decoded, and said to be unverified.
  r = Ctl({"grant", "inspect", "--file", dir_ / "g"}, false);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("NOT verified"), std::string::npos) << r.out;
  // Another key: refused with the code.
  ASSERT_EQ(Ctl({"keygen", "--out", dir_ / "other"}, false).status, 0);
  r = Ctl({"grant", "inspect", "--file", dir_ / "g", "--key", dir_ / "other/grant.pub"}, false);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("REFUSED: unknown_key"), std::string::npos) << r.out;
  // Garbage.
  r = Ctl({"grant", "inspect", "not-a-grant"}, false);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not a grant"), std::string::npos) << r.out;
  // A write grant for a host that does not own the VM.
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read,write"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not_owner"), std::string::npos) << r.out;
  // Revoke by id.
  auto id = acl::DecodeGrant(ReadWholeFile(dir_ / "g").substr(0, ReadWholeFile(dir_ / "g").size() - 1));
  ASSERT_TRUE(id.ok());
  r = Ctl({"grant", "revoke", id->claims.grant_id});
  EXPECT_EQ(r.status, 0) << r.out;
}

TEST_F(AffinityctlAdminTest, OwnerAndTheMigrationStateMachine) {
  CtlRun r = Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client2_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  r = Ctl({"owner", "show", "--vm", "vm-1"});
  EXPECT_NE(r.out.find(FingerprintOf(certs_.client2_cert)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch           2"), std::string::npos) << r.out;

  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert, "--grant-out", dir_ / "dest.grant"});
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string id = MigrationId(r.out);
  ASSERT_FALSE(id.empty()) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "dest.grant").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a grant is a credential";
  EXPECT_NE(Ctl({"migrate", "status", id}).out.find("state        begun"), std::string::npos);
  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("conflict"), std::string::npos) << r.out;
  r = Ctl({"migrate", "commit", id});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("state        committed"), std::string::npos) << r.out;
  r = Ctl({"migrate", "commit", id});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("conflict"), std::string::npos) << r.out;

  // Back to client2, then abort; a commit after the abort is refused.
  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client2_cert, "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string second = MigrationId(r.out);
  ASSERT_EQ(Ctl({"migrate", "abort", second}).status, 0);
  r = Ctl({"migrate", "commit", second});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("aborted"), std::string::npos) << r.out;
  // --mount on something that is not an affinityfs mount: the storage host's
  // change stands, the command says the mount did not apply it (exit 2).
  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client2_cert});
  const std::string third = MigrationId(r.out);
  r = Ctl({"migrate", "abort", third, "--mount", dir_.path()});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("did not apply it"), std::string::npos) << r.out;
}

TEST_F(AffinityctlAdminTest, ADataCertificateCannotDriveTheControlPlane) {
  CtlRun r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert}, true, certs_.client_cert,
              certs_.client_key);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("admin_required"), std::string::npos) << r.out;
  r = Ctl({"owner", "show", "--vm", "vm-1"}, false);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--storage is required"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace affinity::testing
