// ControlHandler: the grant and migration endpoints (docs/protocol.md,
// "Control plane"; docs/grants.md for the rules).
//
// Admin certificate (PeerIdentity::admin) required:
//   GET  /v1/vms/{vm}/owner               {"vm","owner","epoch","open_migration"}
//   PUT  /v1/vms/{vm}/owner               {"holder"}: initial placement
//   POST /v1/grants                       {"holder","vm","images","ops","ttl"} -> {"grant","claims"}
//   POST /v1/grants/{id}/revoke
//   POST /v1/migrations                   {"vm","to","images"?,"ttl"?,"grant_ttl"?}
//                                         -> {"migration":{...},"grant":...}
//   POST /v1/migrations/{id}/commit       -> {"migration":{...},"stale":[...]}
//   POST /v1/migrations/{id}/abort        -> {"migration":{...}}
// The holder of a grant (its own current grant as credential):
//   POST /v1/grants/renew                 -> {"grant","claims"}
// Admin, or the holder of a grant of that migration (even a revoked one):
//   GET  /v1/migrations/{id}              -> {"migration":{...},"stale":[...] once committed}
//
// Thread safety: Handle() from any number of threads at once.
// Failure: never throws; refusals are error Replies (admin_required and the
// grant refusals, bad_request for a body that is not the documented JSON,
// conflict for an illegal transition, not_found for an unknown id).
#pragma once

#include <string>
#include <vector>

#include "storage/api_services.h"
#include "storage/reply.h"

namespace affinity::storage {

struct ApiRequest;

class ControlHandler {
 public:
  static constexpr int64_t kDefaultMigrationTtlSeconds = 600;
  static constexpr int64_t kDefaultGrantTtlSeconds = 300;
  static constexpr size_t kMaxBodyBytes = 64 * 1024;

  explicit ControlHandler(ApiServices services) : services_(services) {}

  // seg: the decoded path segments, seg[0] == "v1"; seg[1] is "grants",
  // "migrations" or "vms" (with seg[3] == "owner").
  Reply Handle(const ApiRequest& request, const std::vector<std::string>& seg) const;

 private:
  Reply Owner(const ApiRequest& request, const std::string& vm) const;
  Reply IssueGrant(const ApiRequest& request) const;
  Reply RenewGrant(const ApiRequest& request) const;
  Reply RevokeGrant(const ApiRequest& request, const std::string& grant_id) const;
  Reply BeginMigration(const ApiRequest& request) const;
  Reply CommitMigration(const ApiRequest& request, const std::string& id) const;
  Reply AbortMigration(const ApiRequest& request, const std::string& id) const;
  Reply MigrationStatus(const ApiRequest& request, const std::string& id) const;

  const ApiServices services_;
};

}  // namespace affinity::storage
