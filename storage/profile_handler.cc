#include "storage/profile_handler.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "profile/profile_builder.h"
#include "profile/profile_codec.h"
#include "profile/signature_profile.h"
#include "storage/api_error.h"
#include "storage/api_router.h"

namespace affinity::storage {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Reply ProfileReply(std::string encoded) {
  Reply r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", profile::kProfileMediaType);
  r.headers.emplace_back("Affinity-Profile-Id", profile::ProfileId(encoded));
  r.content_length = encoded.size();
  r.body = std::move(encoded);
  return r;
}

// The run being migrated: the session that uploaded last, recently, from a
// host other than the caller (the destination's own earlier runs are history).
std::string LiveSession(const std::vector<profile::SessionTrace>& sessions, const std::string& caller, int64_t now) {
  const profile::SessionTrace* live = nullptr;
  for (const auto& s : sessions) {
    if (s.holder == caller || now - s.last_upload_ms > ProfileHandler::kLiveWindowMs) continue;
    if (live == nullptr || s.last_upload_ms > live->last_upload_ms) live = &s;
  }
  return live != nullptr ? live->id : std::string();
}

}  // namespace

Reply ProfileHandler::Get(const ApiRequest& request, const std::string& vm) const {
  if (!request.peer.admin) {
    AuthVerdict verdict = services_.authorizer->AuthorizeVm(request.peer, request.authorization, vm);
    if (auto* denial = std::get_if<acl::GrantDenial>(&verdict)) return DenialReply(*denial);
  }
  auto sessions = services_.access_log->RecentSessions(vm, kHistorySessions);
  if (!sessions.ok()) return ErrorReplyFromStatus(sessions.status());
  const int64_t now = NowMs();
  profile::BuildOptions options;
  options.now_ms = now;
  options.target_ms = now;
  options.live_session = LiveSession(*sessions, request.peer.admin ? std::string() : request.peer.fingerprint, now);
  auto served = services_.access_log->ServedSessions(vm, *sessions, kServedSessions);
  if (!served.ok()) return ErrorReplyFromStatus(served.status());
  const bool history = sessions->size() > (options.live_session.empty() ? 0u : 1u) || !served->empty();
  sessions->insert(sessions->begin(), std::make_move_iterator(served->begin()), std::make_move_iterator(served->end()));
  if (!history) {
    auto imported = services_.access_log->ImportedProfile(vm);
    if (!imported.ok()) return ErrorReplyFromStatus(imported.status());
    if (imported->has_value()) return ProfileReply(std::move(**imported));
  }
  profile::Profile built = profile::BuildProfile(vm, *sessions, options);
  if (services_.guests != nullptr) {
    // What the VM's uploaded starts teach (not the served-read runs: their
    // times are not since a start; not the live run: it is still going).
    std::vector<profile::SessionTrace> teaching;
    for (auto& s : *sessions) {
      if (s.kind == profile::SessionKind::kStart && s.id != options.live_session) teaching.push_back(std::move(s));
    }
    for (const auto& image : services_.guests->ForVm(vm, teaching)) profile::ApplySignatures(built, image);
  }
  return ProfileReply(profile::EncodeProfile(built));
}

Reply ProfileHandler::Import(const ApiRequest& request, const std::string& vm) const {
  if (!request.peer.admin) {
    return DenialReply(acl::GrantDenial{acl::GrantRefusal::kAdminRequired,
                                        "importing a profile needs an admin client certificate"});
  }
  auto decoded = profile::DecodeProfile(request.body);
  if (!decoded.ok()) return ErrorReply(ApiError::kBadRequest, decoded.status().message());
  if (decoded->vm != vm) {
    return ErrorReply(ApiError::kBadRequest, "the profile is of VM '" + decoded->vm + "', not '" + vm + "'");
  }
  Status s = services_.access_log->ImportProfile(vm, request.body);
  if (!s.ok()) return ErrorReplyFromStatus(s);
  size_t blocks = 0;
  for (const auto& img : decoded->images) blocks += img.blocks.size();
  return JsonReply(200,
                   nlohmann::json{{"vm", vm}, {"profile_id", profile::ProfileId(request.body)}, {"blocks", blocks}}.dump());
}

}  // namespace affinity::storage
