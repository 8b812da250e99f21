#include "storage/api_router.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <vector>

#include "storage/api_error.h"
#include "storage/request_path.h"

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
  request.peer = peer;
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
      metrics_->CountError();
      spdlog::info("refused {} {} from {}: {} {}: {}", request.method, Quoted(request.target), request.peer,
                   reply.status, reply.error_code, reply.error_reason);
    } else {
      spdlog::debug("{} {} from {}: {} ({} bytes)", request.method, Quoted(request.target), request.peer, reply.status,
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
  const bool head = request.method == "HEAD";

  if (seg.size() >= 2 && seg[0] == "v1") {
    if (seg.size() == 2 && seg[1] == "health") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      return JsonReply(200, nlohmann::json{{"status", "ok"}, {"version", kStoragedVersion}}.dump());
    }
    if (seg.size() == 2 && seg[1] == "metrics") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      return JsonReply(200, metrics_->ToJson());
    }
    if (seg.size() == 2 && seg[1] == "vms") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      auto vms = store_->ListVms();
      if (!vms.ok()) return ErrorReplyFromStatus(vms.status());
      nlohmann::json list = nlohmann::json::array();
      for (const std::string& vm : *vms) list.push_back({{"name", vm}});
      return JsonReply(200, nlohmann::json{{"vms", std::move(list)}}.dump());
    }
    if (seg.size() == 4 && seg[1] == "vms" && seg[3] == "images") {
      if (!get) return MethodNotAllowed(request.method, "GET");
      auto images = store_->ListImages(seg[2]);
      if (!images.ok()) return ErrorReplyFromStatus(images.status());
      nlohmann::json list = nlohmann::json::array();
      for (const ImageInfo& i : *images) {
        list.push_back({{"name", i.name}, {"size", i.size}, {"generation", i.generation}});
      }
      return JsonReply(200, nlohmann::json{{"vm", seg[2]}, {"images", std::move(list)}}.dump());
    }
    if (seg.size() == 5 && seg[1] == "vms" && seg[3] == "images") {
      if (!get && !head) return MethodNotAllowed(request.method, "GET, HEAD");
      return ranges_->Handle(head, seg[2], seg[4], request.range);
    }
  }
  return ErrorReply(ApiError::kNotFound, "no such endpoint: " + Quoted(request.target));
}

}  // namespace affinity::storage
