#include "ctl/grant_commands.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "acl/grant_file.h"
#include "acl/grant_token.h"
#include "common/atomic_file.h"
#include "common/names.h"
#include "ctl/admin_client.h"

namespace affinity::ctl {
namespace {

struct IssueOptions {
  AdminConnection connection;
  std::string vm, holder, holder_cert, ops, out;
  std::vector<std::string> images;
  int64_t ttl = 300;
  bool json = false;
};

struct InspectOptions {
  std::string token, file, key, issuer = "affinity-storaged";
  bool json = false;
};

void PrintClaims(const acl::GrantClaims& c) {
  std::string images;
  for (const std::string& i : c.images) images += (images.empty() ? "" : ",") + i;
  std::printf("grant id    %s\nissuer      %s\nholder      %s\nvm          %s\nimages      %s\noperations  %s\n",
              c.grant_id.c_str(), c.issuer.c_str(), c.holder.c_str(), c.vm.c_str(), images.c_str(),
              acl::OperationListString(c.ops).c_str());
  std::printf("migration   %s\nnot before  %s\nexpires     %s\nepoch       %llu\n",
              c.migration.empty() ? "- (standing grant)" : c.migration.c_str(), UnixTime(c.not_before).c_str(),
              UnixTime(c.expires).c_str(), static_cast<unsigned long long>(c.epoch));
}

// Writes `text` + "\n" to `path` with mode 0600 (a grant is a credential).
Status WriteSecret(const std::string& path, const std::string& text) {
  if (path == "-" || path == "/dev/stdout") {
    std::printf("%s\n", text.c_str());
    return Status::Ok();
  }
  return WriteFileAtomically(path, text + "\n", 0600);
}

int RunIssue(const IssueOptions& o) {
  auto holder = HolderFrom(o.holder, o.holder_cert, "holder");
  if (!holder.ok()) return Fail(holder.status().message());
  auto ops = acl::ParseOperationList(o.ops);
  if (!ops.ok()) return Fail("--ops: " + ops.status().message());
  nlohmann::json ops_json = nlohmann::json::array();
  for (acl::Operation op : {acl::Operation::kRead, acl::Operation::kPrefetch, acl::Operation::kWrite}) {
    if ((*ops & static_cast<uint8_t>(op)) != 0) ops_json.push_back(acl::OperationName(op));
  }
  nlohmann::json body = {{"holder", *holder}, {"vm", o.vm}, {"ops", ops_json}, {"ttl", o.ttl}};
  if (!o.images.empty()) body["images"] = o.images;
  auto reply = CallStorage(o.connection, "POST", "/v1/grants", body);
  if (!reply.ok()) return Fail(reply.status().message());
  const std::string token = JsonText(*reply, "grant");
  if (token.empty()) return Fail("the storage host sent no grant");
  if (!o.out.empty()) {
    Status s = WriteSecret(o.out, token);
    if (!s.ok()) return Fail(s.message());
  }
  if (o.json) {
    std::printf("%s\n", JsonDump(*reply).c_str());
  } else if (o.out.empty()) {
    std::printf("%s\n", token.c_str());
  } else if (o.out != "-" && o.out != "/dev/stdout") {
    auto decoded = acl::DecodeGrant(token);
    std::printf("wrote grant %s to %s\n", decoded.ok() ? decoded->claims.grant_id.c_str() : "?", o.out.c_str());
  }
  return 0;
}

// The token from TOKEN or --file (acl::ReadGrantFile: bounded, blanks removed).
Result<std::string> ReadToken(const InspectOptions& o) {
  if (!o.token.empty() && !o.file.empty()) return InvalidArgument("give TOKEN or --file, not both");
  if (!o.file.empty()) return acl::ReadGrantFile(o.file);
  if (o.token.empty()) return InvalidArgument("give the grant as TOKEN or --file FILE");
  return o.token;
}

int RunInspect(const InspectOptions& o) {
  auto token = ReadToken(o);
  if (!token.ok()) return Fail(token.status().message());
  auto decoded = acl::DecodeGrant(*token);
  if (!decoded.ok()) return Fail("not a grant: " + decoded.status().message());
  // The verdict: "valid ...", "REFUSED <code>: <reason>" or "NOT verified (no --key)".
  std::string verdict = "NOT verified (no --key)";
  nlohmann::json valid = nullptr;  // true/false once checked
  bool refused = false;
  if (!o.key.empty()) {
    auto key = acl::VerifyingKey::LoadPem(o.key);
    if (!key.ok()) return Fail(key.status().message());
    acl::VerifyOptions v;
    v.key = &*key;
    v.issuer = o.issuer;
    v.now = static_cast<int64_t>(std::time(nullptr));
    acl::GrantVerdict result = acl::VerifyGrant(*token, v);
    if (const auto* d = std::get_if<acl::GrantDenial>(&result)) {
      verdict = "REFUSED " + std::string(acl::GrantRefusalCode(d->refusal)) + ": " + d->reason;
      valid = false;
      refused = true;
    } else {
      verdict = "valid (signature, issuer '" + o.issuer + "' and time window checked with key " + key->key_id() + ")";
      valid = true;
    }
  }
  if (o.json) {
    // The header is only decoded here, not validated: show it as JSON if it
    // is JSON, else as text (never an exception on hostile bytes).
    nlohmann::json header = nlohmann::json::parse(decoded->header_json, nullptr, /*allow_exceptions=*/false);
    if (header.is_discarded()) header = decoded->header_json;
    nlohmann::json claims = nlohmann::json::parse(acl::ClaimsToJson(decoded->claims), nullptr, false);
    nlohmann::json j = {{"header", header}, {"claims", claims}, {"valid", valid}, {"signature", verdict}};
    std::printf("%s\n", JsonDump(j).c_str());
  } else {
    PrintClaims(decoded->claims);
    std::printf("signature: %s\n", verdict.c_str());
  }
  return refused ? 1 : 0;
}

}  // namespace

void AddGrantCommands(CLI::App& app, int& exit_code) {
  CLI::App* grant = app.add_subcommand("grant", "Issue, revoke and inspect grants (docs/grants.md)");
  grant->require_subcommand(1);

  auto issue = std::make_shared<IssueOptions>();
  CLI::App* is = grant->add_subcommand("issue", "Ask the storage host for a standing grant (admin)");
  AddAdminConnectionOptions(is, issue->connection);
  is->add_option("--vm", issue->vm, "VM the grant is for")->required();
  is->add_option("--holder", issue->holder, "Holder's key fingerprint (affinityctl fingerprint CERT)");
  is->add_option("--holder-cert", issue->holder_cert, "Holder's client certificate (instead of --holder)");
  is->add_option("--ops", issue->ops, "Operations, comma separated: read,prefetch,write")->required();
  is->add_option("--image", issue->images, "An image in scope (repeatable; default: every image)");
  is->add_option("--ttl", issue->ttl, "Lifetime in seconds (capped by the storage host)")->capture_default_str();
  is->add_option("--out", issue->out, "Write the grant here (mode 0600) instead of printing it");
  is->add_flag("--json", issue->json, "Print the storage host's JSON reply");
  is->callback([issue, &exit_code] { exit_code = RunIssue(*issue); });

  auto revoke_id = std::make_shared<std::string>();
  auto revoke_conn = std::make_shared<AdminConnection>();
  CLI::App* rv = grant->add_subcommand("revoke", "Revoke a grant and its renewals (admin)");
  AddAdminConnectionOptions(rv, *revoke_conn);
  rv->add_option("GRANT_ID", *revoke_id, "The grant id (jti)")->required();
  rv->callback([revoke_id, revoke_conn, &exit_code] {
    if (Status s = ValidateId("GRANT_ID", *revoke_id); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    auto reply = CallStorage(*revoke_conn, "POST", "/v1/grants/" + *revoke_id + "/revoke");
    if (!reply.ok()) {
      exit_code = Fail(reply.status().message());
      return;
    }
    std::printf("grant %s revoked\n", revoke_id->c_str());
  });

  auto inspect = std::make_shared<InspectOptions>();
  CLI::App* in = grant->add_subcommand("inspect", "Decode a grant; with --key, verify it");
  in->add_option("TOKEN", inspect->token, "The grant");
  in->add_option("--file", inspect->file, "Read the grant from this file");
  in->add_option("--key", inspect->key, "Public grant key (grant.pub) to verify with");
  in->add_option("--issuer", inspect->issuer, "Issuer the grant must name")->capture_default_str();
  in->add_flag("--json", inspect->json, "Print header, claims and verdict as JSON");
  in->callback([inspect, &exit_code] { exit_code = RunInspect(*inspect); });
}

}  // namespace affinity::ctl
