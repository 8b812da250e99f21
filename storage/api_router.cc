#include "storage/api_router.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/names.h"
#include "storage/access_handler.h"
#include "storage/profile_handler.h"
#include "storage/api_error.h"
#include "storage/control_handler.h"
#include "storage/request_path.h"
#include "storage/write_handler.h"

namespace affinity::storage {
namespace {

// Request targets are logged and quoted at most this long (a header may be 16 KiB).
constexpr size_t kMaxQuotedTarget = 256;

std::string Quoted(const std::string& target) {
  if (target.size() <= kMaxQuotedTarget) return target;
  return target.substr(0, kMaxQuotedTarget) + "...";
}

Reply MethodNotAllowed(const std::string& method, const char* allow) {
  Reply r = ErrorReply(ApiError::kMethodNotAllowed,
                       "method " + method + " is not allowed on this resource (allowed: " + allow + ")");
  r.headers.emplace_back("Allow", allow);
  return r;
}

Reply AdminOnly() {
  return DenialReply(acl::GrantDenial{acl::GrantRefusal::kAdminRequired,
                                      "this endpoint needs an admin client certificate (issued by --admin-ca)"});
}

}  // namespace

Reply ApiRouter::Handle(const ApiRequest& request) noexcept {
  try {
    return Logged(request, Route(request));
  } catch (const std::exception& e) {
    return Logged(request, ErrorReply(ApiError::kInternal, std::string("unexpected error: ") + e.what()));
  } catch (...) {
    return Logged(request, ErrorReply(ApiError::kInternal, "unexpected non-standard exception"));
  }
}

Reply ApiRouter::MalformedRequest(const std::string& peer, const std::string& reason) noexcept {
  ApiRequest request;
  request.method = "-";
  request.target = "-";
  request.peer.address = peer;
  try {
    return Logged(request, ErrorReply(ApiError::kBadRequest, reason));
  } catch (...) {
    Reply r;  // out of memory: a bare 400
    r.status = 400;
    return r;
  }
}

Reply ApiRouter::Logged(const ApiRequest& request, Reply reply) noexcept {
  try {
    if (reply.status >= 400) {
      services_.metrics->CountError();
      spdlog::info("refused {} {} from {}: {} {}: {}", request.method, Quoted(request.target), request.peer.address,
                   reply.status, reply.error_code, reply.error_reason);
    } else {
      spdlog::debug("{} {} from {}: {} ({} bytes)", request.method, Quoted(request.target), request.peer.address, reply.status,
                    reply.content_length);
    }
  } catch (...) {
    // Logging must not turn an answer into a failure.
  }
  return reply;
}

Reply ApiRouter::Route(const ApiRequest& request) {
  auto decoded = DecodePathSegments(request.target);
  if (!decoded.ok()) return ErrorReply(ApiError::kBadRequest, decoded.status().message());
  const std::vector<std::string>& seg = *decoded;
  const bool get = request.method == "GET";
  const bool takes_body = request.method == "PUT" || request.method == "POST";
  if (!takes_body && !request.body.empty()) {
    return ErrorReply(ApiError::kBadRequest, request.method + " requests to this API must not carry a body");
  }

  if (seg.size() >= 2 && seg[0] == "v1") {
    if (seg.size() == 2 && seg[1] == "health") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      return JsonReply(200, nlohmann::json{{"status", "ok"}, {"version", kStoragedVersion}}.dump());
    }
    if (seg.size() == 2 && seg[1] == "metrics") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      if (!request.peer.admin) return AdminOnly();
      return JsonReply(200, services_.metrics->ToJson());
    }
    if (seg.size() == 2 && seg[1] == "vms") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      if (!request.peer.admin) return AdminOnly();
      auto vms = services_.store->ListVms();
      if (!vms.ok()) return ErrorReplyFromStatus(vms.status());
      nlohmann::json list = nlohmann::json::array();
      for (const std::string& vm : *vms) list.push_back({{"name", vm}});
      return JsonReply(200, nlohmann::json{{"vms", std::move(list)}}.dump());
    }
    if (seg.size() >= 4 && seg[1] == "vms" && seg[3] == "images") return RouteImages(request, seg);
    if (seg.size() == 4 && seg[1] == "vms" && (seg[3] == "accesses" || seg[3] == "sessions")) {
      if (Status s = ValidateName("vm", seg[2]); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
      if (seg[3] == "accesses") {
        if (request.method != "POST") return MethodNotAllowed(request.method, "POST");
        return AccessHandler(services_).Upload(request, seg[2]);
      }
      if (request.method != "GET") return MethodNotAllowed(request.method, "GET");
      return AccessHandler(services_).Sessions(request, seg[2]);
    }
    if (seg.size() == 4 && seg[1] == "vms" && seg[3] == "profile") {
      if (Status s = ValidateName("vm", seg[2]); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
      if (get) return ProfileHandler(services_).Get(request, seg[2]);
      if (request.method == "PUT") return ProfileHandler(services_).Import(request, seg[2]);
      return MethodNotAllowed(request.method, "GET, PUT");
    }
    if (seg[1] == "grants" || seg[1] == "migrations" || (seg[1] == "vms" && seg.size() == 4 && seg[3] == "owner")) {
      return ControlHandler(services_).Handle(request, seg);
    }
  }
  return ErrorReply(ApiError::kNotFound, "no such endpoint: " + Quoted(request.target));
}

Reply ApiRouter::RouteImages(const ApiRequest& request, const std::vector<std::string>& seg) {
  const std::string& vm = seg[2];
  if (seg.size() == 4) {
    if (request.method != "GET") return MethodNotAllowed(request.method, "GET");
    if (Status s = ValidateName("vm", vm); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
    AuthVerdict verdict = services_.authorizer->AuthorizeVm(request.peer, request.authorization, vm);
    if (auto* denial = std::get_if<acl::GrantDenial>(&verdict)) return DenialReply(*denial);
    const auto& claims = std::get<acl::GrantClaims>(verdict);
    auto images = services_.store->ListImages(vm);
    if (!images.ok()) return ErrorReplyFromStatus(images.status());
    nlohmann::json list = nlohmann::json::array();
    for (const ImageInfo& i : *images) {
      if (!claims.CoversImage(i.name)) continue;  // a grant does not reveal images outside its scope
      list.push_back({{"name", i.name}, {"size", i.size}, {"generation", i.generation}});
    }
    return JsonReply(200, nlohmann::json{{"vm", vm}, {"images", std::move(list)}}.dump());
  }
  if (seg.size() != 5) return ErrorReply(ApiError::kNotFound, "no such endpoint: " + Quoted(request.target));
  const std::string& image = seg[4];
  // Names first: a bad name is a 400 whatever the grant says.
  if (Status s = ValidateName("vm", vm); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
  if (Status s = ValidateName("image", image); !s.ok()) return ErrorReply(ApiError::kBadName, s.message());
  const bool head = request.method == "HEAD";
  if (request.method == "PUT") return WriteHandler(services_).Handle(request, vm, image);
  if (request.method != "GET" && !head) return MethodNotAllowed(request.method, "GET, HEAD, PUT");
  acl::Operation op = acl::Operation::kRead;
  if (request.purpose) {
    if (*request.purpose == "prefetch") {
      op = acl::Operation::kPrefetch;
    } else if (*request.purpose != "read") {
      return ErrorReply(ApiError::kBadRequest, "Affinity-Purpose must be 'read' or 'prefetch'");
    }
  }
  std::string tracked;  // serves are tracked while the grant's migration is open, not after its commit
  AuthVerdict verdict = services_.authorizer->Authorize(request.peer, request.authorization, vm, image, op, &tracked);
  if (auto* denial = std::get_if<acl::GrantDenial>(&verdict)) return DenialReply(*denial);
  // The VM's own reads teach the profile; prefetches are the profile's own guesses.
  const std::string reader = op == acl::Operation::kRead ? request.peer.fingerprint : std::string();
  return services_.ranges->Handle(head, vm, image, request.range, tracked, reader);
}

}  // namespace affinity::storage
