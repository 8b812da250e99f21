// ApiRouter: the storage host's HTTP API v1 (docs/protocol.md), free of any
// transport: a parsed request in, a Reply out.
//
//   GET       /v1/health                    {"status":"ok","version":...}
//   GET       /v1/vms                       {"vms":[{"name":...}]}
//   GET       /v1/vms/{vm}/images           {"vm":...,"images":[{name,size,generation}]}
//   GET, HEAD /v1/vms/{vm}/images/{image}   image bytes (RangeHandler)
//   GET       /v1/metrics                   Metrics::ToJson()
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

#include <optional>
#include <string>
#include <string_view>

#include "storage/metrics.h"
#include "storage/range_handler.h"
#include "storage/reply.h"
#include "storage/volume_store.h"

namespace affinity::storage {

inline constexpr std::string_view kStoragedVersion = "0.1.0";

struct ApiRequest {
  std::string method;                // "GET", "HEAD", ...
  std::string target;                // raw request-target: "/v1/vms/vm-42/images/root.raw?x"
  std::optional<std::string> range;  // the Range header, if sent
  std::string peer;                  // "127.0.0.1:53422", for log lines
};

class ApiRouter {
 public:
  // All must outlive the router.
  ApiRouter(const VolumeStore* store, Metrics* metrics, const RangeHandler* ranges)
      : store_(store), metrics_(metrics), ranges_(ranges) {}

  Reply Handle(const ApiRequest& request) noexcept;

  // The 400 `bad_request` a transport sends for a request it could not
  // parse (logged and counted like every refusal).
  Reply MalformedRequest(const std::string& peer, const std::string& reason) noexcept;

 private:
  Reply Route(const ApiRequest& request);
  Reply Logged(const ApiRequest& request, Reply reply) noexcept;

  const VolumeStore* const store_;
  Metrics* const metrics_;
  const RangeHandler* const ranges_;
};

}  // namespace affinity::storage
