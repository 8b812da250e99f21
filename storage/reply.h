// Reply: what the API decided to answer, independent of the transport.
//
// A Reply is status + headers + one of three body forms:
//   * in memory (`body`): JSON documents, errors, image ranges up to
//     RangeHandler's buffer limit;
//   * streamed (`stream_file` set): a large image range the transport reads
//     from the open file in pieces (its digest was computed in a first pass);
//   * none (`head_only`): a HEAD reply; `content_length` still says how long
//     the body of the matching GET is.
// Content-Length is always `content_length`; the transport adds it.
//
// Thread safety: a plain value, owned by one request.
// Failure: n/a (refusals are Replies with error_code set; see api_error.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/byte_range.h"
#include "storage/volume_store.h"

namespace affinity::storage {

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint64_t content_length = 0;
  bool head_only = false;

  std::shared_ptr<const OpenImage> stream_file;  // set: stream `stream_range` of it
  ByteRange stream_range;
  bool corrupt_stream = false;  // test fault: flip a byte of the streamed body

  // Test fault: hold the reply this long before sending (asio timer).
  std::chrono::microseconds delay{0};

  // Set on refusals, for the log line and tests.
  std::string error_code;
  std::string error_reason;
};

// A JSON reply (Content-Type: application/json).
inline Reply JsonReply(int status, std::string json) {
  Reply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.content_length = json.size();
  r.body = std::move(json);
  return r;
}

}  // namespace affinity::storage
