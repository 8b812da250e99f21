// affinityctl keygen / fingerprint / owner / grant / migrate: the real binary
// against a real affinity-storaged over mutual TLS, as the operator (admin
// certificate) and as a data host (which the control plane must refuse); the
// --mount step against a real affinityfs mount of the destination.
//
// Every run of affinityctl is a child process with a hard timeout whose
// stdout+stderr land in a log file; the fixture's server and mounts are
// killed/unmounted by their guards, so a failing test leaves nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "acl/grant_token.h"
#include "tests/support/mount_guard.h"
#include "tests/support/test_env.h"

namespace affinity::testing {
namespace {

struct CtlRun {
  int status = -1;  // exit status; 128+signal if it died (a crash is never 1)
  std::string out;  // stdout + stderr
};

// Who affinityctl connects as.
struct As {
  std::string cert, key;
};

class AffinityctlControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = GenerateCerts(dir_ / "certs");
    root_ = dir_ / "root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/vm-1").c_str(), 0755), 0);
    WriteRandomFile(root_ + "/vm-1/root.raw", 1 << 20, 3);
    StoragedOptions o;
    o.root = root_;
    o.state_dir = dir_ / "state";
    ASSERT_EQ(::mkdir(o.state_dir.c_str(), 0700), 0);
    o.certs = &certs_;
    server_ = std::make_unique<StoragedProcess>(o);
    ASSERT_NO_FATAL_FAILURE(server_->Start());
    admin_ = {certs_.admin_cert, certs_.admin_key};
    dest_fp_ = FingerprintOf(certs_.client_cert);
    source_fp_ = FingerprintOf(certs_.client2_cert);
  }

  // `prefix` (e.g. {"/usr/bin/env", "X=1"}) + affinityctl + args.
  CtlRun Exec(const std::vector<std::string>& prefix, const std::vector<std::string>& args) {
    std::vector<std::string> argv = prefix;
    argv.push_back(BinaryPath("affinityctl"));
    argv.insert(argv.end(), args.begin(), args.end());
    CtlRun r;
    Subprocess p;
    const std::string log = dir_ / ("ctl." + std::to_string(++runs_) + ".log");
    EXPECT_TRUE(p.Start(argv, log));
    r.status = p.Wait(std::chrono::seconds(30));
    r.out = ReadWholeFile(log);
    return r;
  }

  // affinityctl ARGS... with no connection options.
  CtlRun Local(const std::vector<std::string>& args) { return Exec({}, args); }

  // affinityctl ARGS... connected to the server as `who` (the admin by default).
  CtlRun Ctl(std::vector<std::string> args, const As* who = nullptr) {
    if (who == nullptr) who = &admin_;
    for (const std::string& a :
         {std::string("--storage"), server_->url(), std::string("--ca"), certs_.ca_cert, std::string("--cert"),
          who->cert, std::string("--key"), who->key}) {
      args.push_back(a);
    }
    return Exec({}, args);
  }

  static std::string MigrationId(const std::string& out) {
    std::smatch m;
    return std::regex_search(out, m, std::regex("m-[0-9a-f]{8,}")) ? m.str() : std::string();
  }

  // The JSON document affinityctl printed (ADD_FAILURE and null if none).
  static nlohmann::json Json(const CtlRun& r) {
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "not JSON:\n" << r.out;
      return nullptr;
    }
    return j;
  }

  static std::string Trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  TempDir dir_;
  Certs certs_;
  std::string root_;
  std::unique_ptr<StoragedProcess> server_;
  As admin_;
  std::string dest_fp_, source_fp_;
  int runs_ = 0;
};

// ---- keys ------------------------------------------------------------------

TEST_F(AffinityctlControlTest, KeygenWritesAPairPrintsItsIdAndNeverOverwrites) {
  const std::string keys = dir_ / "keys";
  CtlRun r = Local({"keygen", "--out", keys});
  ASSERT_EQ(r.status, 0) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat(keys.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the key directory is private";
  ASSERT_EQ(::stat((keys + "/grant.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(acl::SigningKey::LoadPem(keys + "/grant.key").ok());
  auto pub = acl::VerifyingKey::LoadPem(keys + "/grant.pub");
  ASSERT_TRUE(pub.ok()) << pub.status().message();
  EXPECT_NE(r.out.find("key id " + pub->key_id()), std::string::npos) << r.out;

  const std::string key_before = ReadWholeFile(keys + "/grant.key");
  const std::string pub_before = ReadWholeFile(keys + "/grant.pub");
  r = Local({"keygen", "--out", keys});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("never overwritten"), std::string::npos) << r.out;
  EXPECT_EQ(ReadWholeFile(keys + "/grant.key"), key_before);
  EXPECT_EQ(ReadWholeFile(keys + "/grant.pub"), pub_before);

  // A directory that cannot be made: exit 1, named.
  r = Local({"keygen", "--out", dir_ / "missing/parent"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("cannot create"), std::string::npos) << r.out;
}

TEST_F(AffinityctlControlTest, FingerprintIsTheHolderFingerprintOfTheCertificate) {
  CtlRun r = Local({"fingerprint", certs_.client_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, dest_fp_ + "\n");
  EXPECT_EQ(Local({"fingerprint", certs_.client2_cert}).out, source_fp_ + "\n");
  r = Local({"fingerprint", certs_.client_key});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("no PEM certificate"), std::string::npos) << r.out;
  r = Local({"fingerprint", dir_ / "missing.pem"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("missing.pem"), std::string::npos) << r.out;
}

// ---- owners ----------------------------------------------------------------

TEST_F(AffinityctlControlTest, OwnerSetAndShow) {
  CtlRun r = Ctl({"owner", "show", "--vm", "vm-1"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("(none"), std::string::npos) << r.out;

  r = Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client2_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(source_fp_), std::string::npos) << r.out;
  r = Ctl({"owner", "show", "--vm", "vm-1"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("owner           " + source_fp_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch           2"), std::string::npos) << r.out;

  // --holder FPR is the same as --holder-cert; --json is the server's reply.
  r = Ctl({"owner", "set", "--vm", "vm-1", "--holder", dest_fp_, "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = Json(r);
  EXPECT_EQ(j.value("vm", ""), "vm-1");
  EXPECT_EQ(j.value("owner", ""), dest_fp_);
  r = Ctl({"owner", "show", "--vm", "vm-1", "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(Json(r).value("owner", ""), dest_fp_);

  // Refused before anything is sent.
  r = Ctl({"owner", "set", "--vm", "vm-1", "--holder", "abc"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("64-hex-digit"), std::string::npos) << r.out;
  r = Ctl({"owner", "set", "--vm", "vm-1", "--holder", dest_fp_, "--holder-cert", certs_.client_cert});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not both"), std::string::npos) << r.out;
  r = Ctl({"owner", "show", "--vm", "../vm-1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--vm"), std::string::npos) << r.out;
}

// ---- grants ----------------------------------------------------------------

TEST_F(AffinityctlControlTest, AReadGrantIsIssuedAndInspectVerifiesIt) {
  const std::string file = dir_ / "g";
  CtlRun r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read", "--out",
                  file, "--ttl", "120"});
  ASSERT_EQ(r.status, 0) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a grant is a credential";
  const std::string token = Trimmed(ReadWholeFile(file));
  auto decoded = acl::DecodeGrant(token);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->claims.holder, dest_fp_);
  EXPECT_EQ(decoded->claims.vm, "vm-1");
  EXPECT_LE(decoded->claims.expires - decoded->claims.issued_at, 120);
  EXPECT_NE(r.out.find(decoded->claims.grant_id), std::string::npos) << r.out;

  r = Local({"grant", "inspect", "--file", file, "--key", certs_.grant_pub});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("signature: valid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("holder      " + dest_fp_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vm          vm-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("operations  read\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("grant id    " + decoded->claims.grant_id), std::string::npos) << r.out;

  // The token as an argument, as JSON.
  r = Local({"grant", "inspect", token, "--key", certs_.grant_pub, "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = Json(r);
  EXPECT_EQ(j["valid"], true);
  EXPECT_EQ(j["claims"]["holder"], dest_fp_);
  EXPECT_EQ(j["claims"]["ops"], nlohmann::json::array({"read"}));
  EXPECT_EQ(j["header"]["alg"], "EdDSA");

  // Without a key: decoded, and said to be unverified.
  r = Local({"grant", "inspect", "--file", file});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("signature: NOT verified (no --key)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(dest_fp_), std::string::npos) << r.out;

  // Another key, another issuer: refused with the code, exit 1.
  ASSERT_EQ(Local({"keygen", "--out", dir_ / "other"}).status, 0);
  r = Local({"grant", "inspect", "--file", file, "--key", dir_ / "other/grant.pub"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("signature: REFUSED unknown_key: "), std::string::npos) << r.out;
  r = Local({"grant", "inspect", "--file", file, "--key", certs_.grant_pub, "--issuer", "someone-else"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("REFUSED wrong_issuer"), std::string::npos) << r.out;
  r = Local({"grant", "inspect", "--file", file, "--key", dir_ / "other/grant.pub", "--json"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(Json(r)["valid"], false);

  // Printed when there is no --out; --json is the server's reply.
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder", dest_fp_, "--ops", "read,prefetch", "--image", "root.raw"});
  ASSERT_EQ(r.status, 0) << r.out;
  auto printed = acl::DecodeGrant(Trimmed(r.out));
  ASSERT_TRUE(printed.ok()) << r.out;
  EXPECT_EQ(printed->claims.images, std::vector<std::string>{"root.raw"});
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder", dest_fp_, "--ops", "read", "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  j = Json(r);
  EXPECT_TRUE(j["grant"].is_string());
  EXPECT_EQ(j["claims"]["holder"], dest_fp_);

  // Revoked by id; an id that cannot be a path component is refused here.
  r = Ctl({"grant", "revoke", decoded->claims.grant_id});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("revoked"), std::string::npos) << r.out;
  r = Ctl({"grant", "revoke", "a/b"});
  EXPECT_EQ(r.status, 1) << r.out;
  // Bad --ops never reaches the server.
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder", dest_fp_, "--ops", "read,fly"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("--ops"), std::string::npos) << r.out;
}

TEST_F(AffinityctlControlTest, AWriteGrantIsOnlyForTheOwner) {
  CtlRun r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read,write"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("not_owner"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("eyJ"), std::string::npos) << "no token printed: " << r.out;

  ASSERT_EQ(Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client_cert}).status, 0);
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read,write"});
  ASSERT_EQ(r.status, 0) << r.out;
  auto g = acl::DecodeGrant(Trimmed(r.out));
  ASSERT_TRUE(g.ok()) << r.out;
  EXPECT_TRUE(g->claims.Allows(acl::Operation::kWrite));
  // Someone else still may not write.
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client2_cert, "--ops", "write"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("not_owner"), std::string::npos) << r.out;
}

TEST_F(AffinityctlControlTest, InspectFailsClearlyOnGarbageAndNeverCrashes) {
  for (const std::string& garbage :
       {std::string("not-a-grant"), std::string("a.b.c"), std::string("...."), std::string("e30.e30.e30"),
        std::string("eyJhbGciOiJFZERTQSJ9.!!!.x"), std::string("\xff\xfe.\x01.\x7f"), std::string(20000, 'A')}) {
    for (bool with_key : {false, true}) {
      std::vector<std::string> args = {"grant", "inspect", garbage};
      if (with_key) args.insert(args.end(), {"--key", certs_.grant_pub, "--json"});
      CtlRun r = Local(args);
      EXPECT_EQ(r.status, 1) << garbage.substr(0, 40) << ": " << r.out;
      EXPECT_NE(r.out.find("affinityctl: not a grant: "), std::string::npos) << r.out;
    }
  }
  // Files: empty, endless, missing, both TOKEN and --file, neither.
  const std::string empty = dir_ / "empty";
  WriteGrantFile(empty, "");
  CtlRun r = Local({"grant", "inspect", "--file", empty});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("is empty"), std::string::npos) << r.out;
  r = Local({"grant", "inspect", "--file", "/dev/zero"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("longer than any grant"), std::string::npos) << r.out;
  r = Local({"grant", "inspect", "--file", dir_ / "missing"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("No such file"), std::string::npos) << r.out;
  r = Local({"grant", "inspect", "x.y.z", "--file", empty});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not both"), std::string::npos) << r.out;
  r = Local({"grant", "inspect"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("give the grant"), std::string::npos) << r.out;

  // Real claims under a header that is not JSON: decoded (it is only
  // inspection), refused with a key, and --json stays valid JSON.
  CtlRun issued = Ctl({"grant", "issue", "--vm", "vm-1", "--holder", dest_fp_, "--ops", "read"});
  ASSERT_EQ(issued.status, 0) << issued.out;
  std::string token = Trimmed(issued.out);
  // A key file that is not a key.
  r = Local({"grant", "inspect", token, "--key", certs_.ca_cert});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(r.out.find("signature:"), std::string::npos) << r.out;
  token.replace(0, token.find('.'), "bm90IGpzb24");  // base64url("not json")
  r = Local({"grant", "inspect", token, "--json"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(Json(r)["header"], "not json");
  r = Local({"grant", "inspect", token, "--key", certs_.grant_pub});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("REFUSED malformed_grant"), std::string::npos) << r.out;
}

// ---- migrations ------------------------------------------------------------

TEST_F(AffinityctlControlTest, TheMigrationStateMachine) {
  ASSERT_EQ(Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client2_cert}).status, 0);

  const std::string grant_file = dir_ / "dest.grant";
  CtlRun r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert, "--grant-out", grant_file});
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string id = MigrationId(r.out);
  ASSERT_FALSE(id.empty()) << r.out;
  EXPECT_NE(r.out.find("state        begun"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deadline     1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source       " + source_fp_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("destination  " + dest_fp_), std::string::npos) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat(grant_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a grant is a credential";
  auto grant = acl::DecodeGrant(Trimmed(ReadWholeFile(grant_file)));
  ASSERT_TRUE(grant.ok()) << grant.status().message();
  EXPECT_EQ(grant->claims.migration, id);
  EXPECT_EQ(grant->claims.holder, dest_fp_);
  EXPECT_EQ(Local({"grant", "inspect", "--file", grant_file, "--key", certs_.grant_pub}).status, 0);

  r = Ctl({"migrate", "status", id});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("state        begun"), std::string::npos) << r.out;
  r = Ctl({"migrate", "status", id, "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(Json(r)["migration"]["state"], "begun");
  r = Ctl({"owner", "show", "--vm", "vm-1", "--json"});
  EXPECT_EQ(Json(r).value("open_migration", ""), id) << r.out;

  // One open migration per VM.
  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("conflict"), std::string::npos) << r.out;

  r = Ctl({"migrate", "commit", id});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("state        committed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stale        0 ranges"), std::string::npos) << r.out;
  r = Ctl({"owner", "show", "--vm", "vm-1"});
  EXPECT_NE(r.out.find("owner           " + dest_fp_), std::string::npos) << "commit moves ownership: " << r.out;
  r = Ctl({"migrate", "commit", id});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("conflict"), std::string::npos) << r.out;
  r = Ctl({"migrate", "status", id, "--json"});
  EXPECT_EQ(Json(r)["migration"]["state"], "committed");

  // Back to client2 (the grant printed, not written), then abort; a commit
  // after the abort is refused.
  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to", source_fp_, "--grant-ttl", "60", "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json begun = Json(r);
  const std::string second = begun["migration"].value("id", "");
  ASSERT_FALSE(second.empty()) << r.out;
  EXPECT_EQ(begun["claims"]["mig"], second);
  r = Ctl({"migrate", "abort", second});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("state        aborted"), std::string::npos) << r.out;
  r = Ctl({"migrate", "commit", second});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("conflict"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aborted"), std::string::npos) << r.out;
  r = Ctl({"migrate", "status", second});
  EXPECT_NE(r.out.find("state        aborted"), std::string::npos) << r.out;

  // Unknown and impossible ids.
  r = Ctl({"migrate", "status", "m-000000000000000000000000"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("not_found"), std::string::npos) << r.out;
  r = Ctl({"migrate", "status", "../grants"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("migration ID"), std::string::npos) << r.out;
}

TEST_F(AffinityctlControlTest, ADataCertificateCannotDriveTheControlPlane) {
  const As data{certs_.client_cert, certs_.client_key};
  CtlRun r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert}, &data);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("admin_required"), std::string::npos) << r.out;
  r = Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client_cert}, &data);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("admin_required"), std::string::npos) << r.out;
  r = Ctl({"grant", "issue", "--vm", "vm-1", "--holder-cert", certs_.client_cert, "--ops", "read"}, &data);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("admin_required"), std::string::npos) << r.out;
  // Nothing was begun by the refused call.
  r = Ctl({"owner", "show", "--vm", "vm-1", "--json"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(Json(r).value("open_migration", ""), "") << r.out;
}

TEST_F(AffinityctlControlTest, ConnectionOptionsComeFromTheEnvironment) {
  const std::vector<std::string> env = {"/usr/bin/env",
                                        "AFFINITY_STORAGE=" + server_->url(),
                                        "AFFINITY_CA=" + certs_.ca_cert,
                                        "AFFINITY_CERT=" + certs_.admin_cert,
                                        "AFFINITY_KEY=" + certs_.admin_key};
  CtlRun r = Exec(env, {"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  r = Exec(env, {"owner", "show", "--vm", "vm-1"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(dest_fp_), std::string::npos) << r.out;
  // An option overrides its variable: the data certificate is refused.
  r = Exec(env, {"owner", "show", "--vm", "vm-1", "--cert", certs_.client_cert, "--key", certs_.client_key});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("admin_required"), std::string::npos) << r.out;
  // Neither: a clear message, not a connection attempt.
  r = Exec({"/usr/bin/env", "-u", "AFFINITY_STORAGE"}, {"owner", "show", "--vm", "vm-1"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("--storage is required"), std::string::npos) << r.out;
  r = Exec({}, {"owner", "show", "--vm", "vm-1", "--storage", "http://127.0.0.1:1", "--ca", certs_.ca_cert, "--cert",
                certs_.admin_cert, "--key", certs_.admin_key});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("https://"), std::string::npos) << r.out;
  // A storage host that is not there: the connection error, exit 1.
  r = Exec(env, {"owner", "show", "--vm", "vm-1", "--storage", "https://127.0.0.1:1", "--timeout", "0.5"});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("affinityctl: "), std::string::npos) << r.out;
}

// ---- --mount: the destination applies the change before the command returns

class AffinityctlMountTest : public AffinityctlControlTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AffinityctlControlTest::SetUp());
    ASSERT_EQ(::access("/dev/fuse", R_OK | W_OK), 0) << "no usable /dev/fuse: " << std::strerror(errno);
    mnt_ = dir_ / "mnt";
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "cache").c_str(), 0700), 0);
  }

  // The source (client2) owns vm-1; a migration to the destination (client,
  // the mount's certificate) begins; the destination mounts with its grant.
  // The grant poll is the longest allowed (60 s), so within the test only
  // --mount can make the mount learn of a commit or an abort.
  std::string BeginAndMount(std::unique_ptr<AffinityfsMount>* mount) {
    EXPECT_EQ(Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client2_cert}).status, 0);
    const std::string grant = dir_ / "dest.grant";
    CtlRun r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert, "--grant-out", grant});
    EXPECT_EQ(r.status, 0) << r.out;
    MountOptions o;
    o.mountpoint = mnt_;
    o.storage_url = server_->url();
    o.vm = "vm-1";
    o.cache_dir = dir_ / "cache";
    o.certs = &certs_;
    o.grant_file = grant;
    o.extra_args = {"--grant-poll", "60", "--timeout", "5"};
    *mount = std::make_unique<AffinityfsMount>(o);
    (*mount)->Start();
    return MigrationId(r.out);
  }

  std::string Xattr(const std::string& name) {
    char buf[256];
    ssize_t n = ::getxattr(mnt_.c_str(), ("user.affinity." + name).c_str(), buf, sizeof buf);
    EXPECT_GE(n, 0) << "getxattr " << name << ": " << std::strerror(errno);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
  }

  // Reads the first 64 KiB of the image; 0 or -errno.
  int ReadImage() {
    int fd = ::open((mnt_ + "/root.raw").c_str(), O_RDONLY);
    if (fd < 0) return -errno;
    std::string buf(64 << 10, '\0');
    ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
    int err = errno;
    ::close(fd);
    if (n < 0) return -err;
    return buf == ReadWholeFile(root_ + "/vm-1/root.raw").substr(0, buf.size()) ? 0 : -EIO;
  }

  std::string mnt_;
};

TEST_F(AffinityctlMountTest, AbortWithMountIsAppliedBeforeTheCommandReturns) {
  std::unique_ptr<AffinityfsMount> mount;
  const std::string id = BeginAndMount(&mount);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(ReadImage(), 0) << mount->log();
  EXPECT_EQ(Xattr("migration"), id);

  CtlRun r = Ctl({"migrate", "abort", id, "--mount", mnt_});
  ASSERT_EQ(r.status, 0) << r.out << mount->log();
  EXPECT_NE(r.out.find("state        aborted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("applied the abort"), std::string::npos) << r.out;
  // No waiting: the mount knows now.
  EXPECT_EQ(Xattr("grant_state"), "revoked");
  EXPECT_EQ(ReadImage(), -EACCES);
}

TEST_F(AffinityctlMountTest, CommitWithMountIsAppliedBeforeTheCommandReturns) {
  std::unique_ptr<AffinityfsMount> mount;
  const std::string id = BeginAndMount(&mount);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(ReadImage(), 0) << mount->log();

  CtlRun r = Ctl({"migrate", "commit", id, "--mount", mnt_, "--json"});
  ASSERT_EQ(r.status, 0) << r.out << mount->log();
  EXPECT_EQ(Json(r)["migration"]["state"], "committed");
  EXPECT_EQ(Xattr("migration_state"), "committed");
  EXPECT_EQ(ReadImage(), 0);
}

TEST_F(AffinityctlMountTest, AMountThatCannotApplyItIsExit2AndSaysWhy) {
  // A plain directory would take the attribute silently: refused, and the
  // storage host's change is said to stand.
  ASSERT_EQ(Ctl({"owner", "set", "--vm", "vm-1", "--holder-cert", certs_.client2_cert}).status, 0);
  CtlRun r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  std::string id = MigrationId(r.out);
  r = Ctl({"migrate", "abort", id, "--mount", dir_.path()});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("has aborted migration " + id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not an affinityfs mount"), std::string::npos) << r.out;
  EXPECT_NE(Ctl({"migrate", "status", id}).out.find("state        aborted"), std::string::npos);

  r = Ctl({"migrate", "begin", "--vm", "vm-1", "--to-cert", certs_.client_cert});
  ASSERT_EQ(r.status, 0) << r.out;
  id = MigrationId(r.out);
  r = Ctl({"migrate", "commit", id, "--mount", dir_ / "nowhere"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("has committed migration " + id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("No such file or directory (ENOENT)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace affinity::testing
