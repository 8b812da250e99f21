#include "storage/access_handler.h"

#include <nlohmann/json.hpp>

#include "storage/api_error.h"
#include "storage/api_router.h"

namespace affinity::storage {

Reply AccessHandler::Upload(const ApiRequest& request, const std::string& vm) const {
  if (request.body.size() > kMaxBodyBytes) {
    return ErrorReply(ApiError::kPayloadTooLarge,
                      "an access batch is at most " + std::to_string(kMaxBodyBytes) + " bytes; send smaller batches");
  }
  AuthVerdict verdict = services_.authorizer->AuthorizeVm(request.peer, request.authorization, vm);
  if (auto* denial = std::get_if<acl::GrantDenial>(&verdict)) return DenialReply(*denial);
  const auto& claims = std::get<acl::GrantClaims>(verdict);
  auto batch = profile::DecodeAccessBatch(request.body);
  if (!batch.ok()) return ErrorReply(ApiError::kBadRequest, batch.status().message());
  for (const auto& r : batch->records) {
    if (!claims.CoversImage(r.image)) {
      return DenialReply(acl::GrantDenial{acl::GrantRefusal::kOutOfScope,
                                          "grant " + claims.grant_id + " does not cover image '" + r.image + "'"});
    }
  }
  auto stored = services_.access_log->Record(vm, request.peer.fingerprint, *batch);
  if (!stored.ok()) return ErrorReplyFromStatus(stored.status());
  return JsonReply(200, nlohmann::json{{"accepted", stored->accepted}, {"duplicates", stored->duplicates}}.dump());
}

Reply AccessHandler::Sessions(const ApiRequest& request, const std::string& vm) const {
  if (!request.peer.admin) {
    return DenialReply(acl::GrantDenial{acl::GrantRefusal::kAdminRequired,
                                        "listing sessions needs an admin client certificate"});
  }
  auto sessions = services_.access_log->Sessions(vm);
  if (!sessions.ok()) return ErrorReplyFromStatus(sessions.status());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : *sessions) {
    list.push_back({{"session", s.session}, {"holder", s.holder}, {"start_ms", s.start_ms}, {"records", s.records}});
  }
  return JsonReply(200, nlohmann::json{{"vm", vm}, {"sessions", std::move(list)}}.dump());
}

}  // namespace affinity::storage
