#include "storage/control_handler.h"

#include <mutex>
#include <nlohmann/json.hpp>

#include "acl/holder_fingerprint.h"
#include "common/names.h"
#include "storage/api_error.h"
#include "storage/api_router.h"

namespace affinity::storage {
namespace {

using nlohmann::json;

Reply AdminRequired(const ApiRequest& request) {
  return DenialReply(acl::GrantDenial{
      acl::GrantRefusal::kAdminRequired,
      "this control-plane call needs an admin client certificate (one issued by --admin-ca); " +
          (request.peer.subject.empty() ? std::string("this client's") : "'" + request.peer.subject + "'") +
          " is not one"});
}

Reply MethodNotAllowed(const std::string& method, const char* allow) {
  Reply r = ErrorReply(ApiError::kMethodNotAllowed,
                       "method " + method + " is not allowed on this resource (allowed: " + allow + ")");
  r.headers.emplace_back("Allow", allow);
  return r;
}

// The request body as a JSON object, or the 400 that says why not.
std::variant<json, Reply> BodyObject(const ApiRequest& request) {
  if (request.body.size() > ControlHandler::kMaxBodyBytes) {
    return ErrorReply(ApiError::kPayloadTooLarge, "control-plane bodies are at most " +
                                                      std::to_string(ControlHandler::kMaxBodyBytes) + " bytes");
  }
  json j = json::parse(request.body.empty() ? std::string("{}") : request.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return ErrorReply(ApiError::kBadRequest, "the request body is not a JSON object");
  return j;
}

std::optional<std::string> OptionalString(const json& j, const char* key, std::string* error) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (!it->is_string()) {
    *error = std::string("'") + key + "' must be a string";
    return std::nullopt;
  }
  return it->get<std::string>();
}

// Reads an optional positive integer (seconds); `*error` is set if present but wrong.
int64_t Seconds(const json& j, const char* key, int64_t fallback, int64_t max, std::string* error) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > max) {
    *error = std::string("'") + key + "' must be an integer number of seconds in 1.." + std::to_string(max);
    return fallback;
  }
  return it->get<int64_t>();
}

// "images": ["a.raw", ...] or absent (every image).
std::vector<std::string> Images(const json& j, std::string* error) {
  auto it = j.find("images");
  if (it == j.end()) return {std::string(acl::kEveryImage)};
  if (!it->is_array() || it->empty() || it->size() > acl::kMaxImagesPerGrant) {
    *error = "'images' must be a non-empty array of image names (or absent for every image)";
    return {};
  }
  std::vector<std::string> out;
  for (const json& i : *it) {
    if (!i.is_string()) {
      *error = "'images' holds a non-string";
      return {};
    }
    std::string name = i.get<std::string>();
    if (name != acl::kEveryImage) {
      if (Status s = ValidateName("image", name); !s.ok()) {
        *error = s.message();
        return {};
      }
    }
    out.push_back(std::move(name));
  }
  return out;
}

json ClaimsJson(const acl::GrantClaims& c) { return json::parse(acl::ClaimsToJson(c)); }

json MigrationJson(const Migration& m, const ServedSummary& served) {
  return json{{"id", m.id},
              {"vm", m.vm},
              {"state", MigrationStateName(m.state)},
              {"source", m.source},
              {"destination", m.destination},
              {"images", m.images},
              {"created_at", m.created_at},
              {"deadline", m.deadline},
              {"ended_at", m.ended_at},
              {"served_blocks", served.blocks},
              {"served_block_size", ChunkTracker::kBlockSize}};
}

json StaleJson(const std::vector<StaleRange>& stale) {
  json list = json::array();
  for (const StaleRange& r : stale) {
    list.push_back({{"image", r.image}, {"offset", r.range.offset}, {"length", r.range.length}});
  }
  return list;
}

Reply IssuedReply(const IssueResult& issued) {
  if (const auto* d = std::get_if<acl::GrantDenial>(&issued)) return DenialReply(*d);
  if (const auto* s = std::get_if<Status>(&issued)) return ErrorReply(ApiError::kInternal, s->ToString());
  const auto& g = std::get<IssuedGrant>(issued);
  return JsonReply(200, json{{"grant", g.token}, {"claims", ClaimsJson(g.claims)}}.dump());
}

}  // namespace

Reply ControlHandler::Handle(const ApiRequest& request, const std::vector<std::string>& seg) const {
  const std::string& m = request.method;
  if (seg[1] == "vms" && seg.size() == 4 && seg[3] == "owner") {
    if (m != "GET" && m != "PUT") return MethodNotAllowed(m, "GET, PUT");
    return Owner(request, seg[2]);
  }
  if (seg[1] == "grants") {
    if (seg.size() == 2) return m == "POST" ? IssueGrant(request) : MethodNotAllowed(m, "POST");
    if (seg.size() == 3 && seg[2] == "renew") return m == "POST" ? RenewGrant(request) : MethodNotAllowed(m, "POST");
    if (seg.size() == 4 && seg[3] == "revoke") {
      return m == "POST" ? RevokeGrant(request, seg[2]) : MethodNotAllowed(m, "POST");
    }
  }
  if (seg[1] == "migrations") {
    if (seg.size() == 2) return m == "POST" ? BeginMigration(request) : MethodNotAllowed(m, "POST");
    if (seg.size() == 3) return m == "GET" ? MigrationStatus(request, seg[2]) : MethodNotAllowed(m, "GET");
    if (seg.size() == 4 && seg[3] == "commit") {
      return m == "POST" ? CommitMigration(request, seg[2]) : MethodNotAllowed(m, "POST");
    }
    if (seg.size() == 4 && seg[3] == "abort") {
      return m == "POST" ? AbortMigration(request, seg[2]) : MethodNotAllowed(m, "POST");
    }
  }
  return ErrorReply(ApiError::kNotFound, "no such endpoint: " + request.target.substr(0, 256));
}

Reply ControlHandler::Owner(const ApiRequest& request, const std::string& vm) const {
  if (!request.peer.admin) return AdminRequired(request);
  if (Status s = ValidateName("vm", vm); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
  VmOwnership o;
  if (request.method == "PUT") {
    auto body = BodyObject(request);
    if (auto* r = std::get_if<Reply>(&body)) return std::move(*r);
    std::string error;
    auto holder = OptionalString(std::get<json>(body), "holder", &error);
    if (!holder || !acl::IsFingerprint(*holder)) {
      return ErrorReply(ApiError::kBadRequest, "'holder' must be the 64-hex-digit key fingerprint of the owner "
                                               "(affinityctl fingerprint CERT)");
    }
    auto set = services_.registry->SetOwner(vm, *holder);
    if (!set.ok()) return ErrorReplyFromStatus(set.status());
    o = *set;
  } else {
    o = services_.registry->Ownership(vm);
  }
  return JsonReply(200, json{{"vm", vm}, {"owner", o.owner}, {"epoch", o.epoch}, {"open_migration", o.open_migration}}
                            .dump());
}

Reply ControlHandler::IssueGrant(const ApiRequest& request) const {
  if (!request.peer.admin) return AdminRequired(request);
  auto body = BodyObject(request);
  if (auto* r = std::get_if<Reply>(&body)) return std::move(*r);
  const json& j = std::get<json>(body);
  std::string error;
  StandingGrantRequest g;
  auto holder = OptionalString(j, "holder", &error);
  auto vm = OptionalString(j, "vm", &error);
  g.images = Images(j, &error);
  g.ttl_seconds = Seconds(j, "ttl", kDefaultGrantTtlSeconds, services_.issuer->max_ttl(), &error);
  auto ops = j.find("ops");
  if (ops == j.end() || !ops->is_array() || ops->empty()) {
    error = "'ops' must be a non-empty array of read, prefetch, write";
  } else {
    for (const json& o : *ops) {
      auto op = o.is_string() ? acl::ParseOperation(o.get<std::string>()) : Result<acl::Operation>(InvalidArgument("'ops' holds a non-string"));
      if (!op.ok()) {
        error = op.status().message();
        break;
      }
      g.ops |= static_cast<uint8_t>(*op);
    }
  }
  if (error.empty() && (!holder || !acl::IsFingerprint(*holder))) error = "'holder' must be a 64-hex-digit key fingerprint";
  if (error.empty() && !vm) error = "'vm' is required";
  if (error.empty()) {
    if (Status s = ValidateName("vm", *vm); !s.ok()) error = s.message();
  }
  if (!error.empty()) return ErrorReply(ApiError::kBadRequest, error);
  g.holder = *holder;
  g.vm = *vm;
  return IssuedReply(services_.issuer->Issue(g));
}

Reply ControlHandler::RenewGrant(const ApiRequest& request) const {
  AuthVerdict who = services_.authorizer->AuthenticateHolder(request.peer, request.authorization);
  if (auto* denial = std::get_if<acl::GrantDenial>(&who)) return DenialReply(*denial);
  return IssuedReply(services_.issuer->Renew(std::get<acl::GrantClaims>(who)));
}

Reply ControlHandler::RevokeGrant(const ApiRequest& request, const std::string& grant_id) const {
  if (!request.peer.admin) return AdminRequired(request);
  if (Status s = ValidateId("grant id", grant_id); !s.ok()) return ErrorReply(ApiError::kBadRequest, s.message());
  Status s = services_.registry->Revoke(grant_id);
  if (!s.ok()) return ErrorReplyFromStatus(s);
  return JsonReply(200, json{{"grant_id", grant_id}, {"revoked", true}}.dump());
}

Reply ControlHandler::BeginMigration(const ApiRequest& request) const {
  if (!request.peer.admin) return AdminRequired(request);
  auto body = BodyObject(request);
  if (auto* r = std::get_if<Reply>(&body)) return std::move(*r);
  const json& j = std::get<json>(body);
  std::string error;
  auto vm = OptionalString(j, "vm", &error);
  auto to = OptionalString(j, "to", &error);
  std::vector<std::string> images = Images(j, &error);
  const int64_t ttl = Seconds(j, "ttl", kDefaultMigrationTtlSeconds, 7 * 24 * 3600, &error);
  const int64_t grant_ttl = Seconds(j, "grant_ttl", kDefaultGrantTtlSeconds, services_.issuer->max_ttl(), &error);
  if (error.empty() && !vm) error = "'vm' is required";
  if (error.empty()) {
    if (Status s = ValidateName("vm", *vm); !s.ok()) error = s.message();
  }
  if (error.empty() && (!to || !acl::IsFingerprint(*to))) {
    error = "'to' must be the destination's 64-hex-digit key fingerprint (affinityctl fingerprint CERT)";
  }
  if (!error.empty()) return ErrorReply(ApiError::kBadRequest, error);
  auto vms = services_.store->ListImages(*vm);
  if (!vms.ok()) return ErrorReplyFromStatus(vms.status());  // an unknown VM is a 404, not a migration
  auto begun = services_.registry->Begin(*vm, *to, images, ttl);
  if (!begun.ok()) return ErrorReplyFromStatus(begun.status());
  IssueResult grant = services_.issuer->ForMigration(*begun, grant_ttl);
  if (!std::holds_alternative<IssuedGrant>(grant)) {
    (void)services_.registry->Abort(begun->id);  // no grant, no migration
    return IssuedReply(grant);
  }
  const auto& g = std::get<IssuedGrant>(grant);
  return JsonReply(200, json{{"migration", MigrationJson(*begun, {})},
                             {"grant", g.token},
                             {"profile", "/v1/vms/" + *vm + "/profile"},
                             {"claims", ClaimsJson(g.claims)}}
                            .dump());
}

Reply ControlHandler::CommitMigration(const ApiRequest& request, const std::string& id) const {
  if (!request.peer.admin) return AdminRequired(request);
  auto found = services_.registry->Find(id);
  if (!found.ok()) return ErrorReplyFromStatus(found.status());
  // Exclusive: no write of the old owner is between its check and its tracking now.
  std::unique_lock commit_guard(services_.write_locks->For(found->vm));
  if (!services_.tracker->complete()) {
    return ErrorReply(ApiError::kConflict, "a write could not be tracked since this storage host started, so the "
                                           "stale list could be incomplete; abort migration " + id + " instead");
  }
  if (!found->open()) {
    return ErrorReply(ApiError::kConflict, "migration " + id + " is " + std::string(MigrationStateName(found->state)) +
                                               "; it cannot be committed");
  }
  // Snapshot first: with writes held off, nothing can go stale between it and the commit.
  auto stale = services_.tracker->SnapshotStale(id, found->vm);
  if (!stale.ok()) return ErrorReplyFromStatus(stale.status());
  auto committed = services_.registry->Commit(id);
  if (!committed.ok()) return ErrorReplyFromStatus(committed.status());
  auto served = services_.tracker->Served(id);
  return JsonReply(200, json{{"migration", MigrationJson(*committed, served.ok() ? *served : ServedSummary{})},
                             {"stale", StaleJson(*stale)}}
                            .dump());
}

Reply ControlHandler::AbortMigration(const ApiRequest& request, const std::string& id) const {
  if (!request.peer.admin) return AdminRequired(request);
  auto aborted = services_.registry->Abort(id);
  if (!aborted.ok()) return ErrorReplyFromStatus(aborted.status());
  auto served = services_.tracker->Served(id);
  return JsonReply(200, json{{"migration", MigrationJson(*aborted, served.ok() ? *served : ServedSummary{})}}.dump());
}

Reply ControlHandler::MigrationStatus(const ApiRequest& request, const std::string& id) const {
  if (!request.peer.admin) {
    AuthVerdict who = services_.authorizer->AuthenticateHolder(request.peer, request.authorization);
    if (auto* denial = std::get_if<acl::GrantDenial>(&who)) return DenialReply(*denial);
    if (std::get<acl::GrantClaims>(who).migration != id) {
      return DenialReply(acl::GrantDenial{acl::GrantRefusal::kOutOfScope,
                                          "this grant is not of migration " + id + " (or use an admin certificate)"});
    }
  }
  auto m = services_.registry->Find(id);
  if (!m.ok()) return ErrorReplyFromStatus(m.status());
  auto served = services_.tracker->Served(id);
  json reply = {{"migration", MigrationJson(*m, served.ok() ? *served : ServedSummary{})}};
  if (m->state == MigrationState::kCommitted) {
    auto stale = services_.tracker->StaleAtCommit(id);
    if (!stale.ok()) return ErrorReplyFromStatus(stale.status());
    reply["stale"] = StaleJson(*stale);
  }
  return JsonReply(200, reply.dump());
}

}  // namespace affinity::storage
