// Api: the storage host's HTTP API v1 (docs/protocol.md), transport-free.
//
// Handle() turns a parsed request (method, target, Range header) into a Reply:
// status, headers and either a small in-memory body or, for large ranges, an
// open file and a range the transport streams. Every range reply carries a
// Content-Digest (sha-256) of exactly the bytes sent, computed here; ranges
// larger than kMaxBufferedRange are hashed in a first pass and streamed in a
// second, so no request makes the server hold a whole image in memory.
// Errors: a JSON body {"error": code, "reason": sentence} and an
// Affinity-Error header with the same code.
//
// Thread safety: Handle() may run on many connection threads at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/byte_range.h"
#include "storage/metrics.h"
#include "storage/test_faults.h"
#include "storage/volume_store.h"

namespace affinity::storage {

struct ApiRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string target;  // "/v1/vms/vm-42/images/root.raw?x" (raw, percent-encoded)
  std::optional<std::string> range;
};

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint64_t content_length = 0;     // bytes the body has (also for HEAD)
  bool head_only = false;          // send headers only
  std::shared_ptr<OpenImage> file; // set: stream file_range from it instead of `body`
  ByteRange file_range;
  bool corrupt_stream = false;     // test fault on a streamed body
  bool is_data = false;            // an image request (gets the test delay)
};

class Api {
 public:
  static constexpr uint64_t kMaxBufferedRange = 16ull << 20;

  Api(VolumeStore* store, Metrics* metrics, TestFaults* faults) : store_(store), metrics_(metrics), faults_(faults) {}
  Reply Handle(const ApiRequest& request);

 private:
  Reply Image(const ApiRequest& request, const std::string& vm, const std::string& image);
  Reply Error(int status, const std::string& code, const std::string& reason);
  Reply FromStatus(const Status& s);
  static Reply Json(int status, std::string body);

  VolumeStore* store_;
  Metrics* metrics_;
  TestFaults* faults_;
};

// Splits "/a/b%2Fc" into decoded segments; kInvalidArgument on bad %-escapes.
Result<std::vector<std::string>> DecodePathSegments(std::string_view target);

}  // namespace affinity::storage
