// ApiRouter: the storage host's HTTP API v1 (docs/protocol.md), free of any
// transport: a parsed request in, a Reply out.
//
//   GET       /v1/health                    any client        {"status":"ok","version":...}
//   GET       /v1/vms                       admin             {"vms":[{"name":...}]}
//   GET       /v1/metrics                   admin             Metrics::ToJson()
//   GET       /v1/vms/{vm}/images           grant for vm      {"vm":...,"images":[...in scope]}
//   GET, HEAD /v1/vms/{vm}/images/{image}   read (or prefetch) grant: bytes (RangeHandler)
//   PUT       /v1/vms/{vm}/images/{image}   write grant, owner (WriteHandler)
//   POST      /v1/vms/{vm}/accesses         grant for vm; GET .../sessions admin (AccessHandler)
//   /v1/grants..., /v1/migrations..., /v1/vms/{vm}/owner: ControlHandler
//
// The raw target is percent-decoded into segments first (request_path.h) and
// names are validated after decoding (VolumeStore), so "%2e%2e" is refused
// like "..". Every refusal is logged as one line (method, target, status,
// code, reason) and counted in errors_total.
//
// Thread safety: Handle() from any number of threads at once.
// Failure: Handle() never throws: an exception from below (bad_alloc, a
// library error) is caught here and answered 500 `internal` with its message.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <vector>

#include "storage/api_services.h"
#include "storage/peer_identity.h"
#include "storage/reply.h"

namespace affinity::storage {

inline constexpr std::string_view kStoragedVersion = "0.1.0";

struct ApiRequest {
  std::string method;                // "GET", "HEAD", ...
  std::string target;                // raw request-target: "/v1/vms/vm-42/images/root.raw?x"
  std::optional<std::string> range;  // the Range header, if sent
  PeerIdentity peer;                 // established by the TLS handshake
  std::optional<std::string> authorization;  // "Bearer <grant>"
  std::optional<std::string> purpose;        // Affinity-Purpose: "prefetch" or "read"
  std::optional<std::string> content_range;  // of a PUT body
  std::string body;                           // PUT/POST only
  // Set by the transport: true once the client has closed its end of the
  // connection. A write whose client is gone is not applied (it was never
  // acknowledged, so the client sends it again; applied late, after the
  // client's newer write of the same bytes, it would undo that one).
  std::function<bool()> client_gone;
};

class ApiRouter {
 public:
  explicit ApiRouter(ApiServices services) : services_(services) {}

  Reply Handle(const ApiRequest& request) noexcept;

  // The 400 `bad_request` a transport sends for a request it could not
  // parse (logged and counted like every refusal).
  Reply MalformedRequest(const std::string& peer, const std::string& reason) noexcept;

 private:
  Reply Route(const ApiRequest& request);
  Reply RouteImages(const ApiRequest& request, const std::vector<std::string>& seg);
  Reply Logged(const ApiRequest& request, Reply reply) noexcept;

  const ApiServices services_;
};

}  // namespace affinity::storage
