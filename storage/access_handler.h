// AccessHandler: the profiler's intake (docs/profile.md).
//
//   POST /v1/vms/{vm}/accesses   a grant for vm (any operation); body: an
//        AccessBatch (profile/access_batch.h), at most 1 MiB, every image in
//        the grant's scope -> {"accepted":N,"duplicates":M}
//   GET  /v1/vms/{vm}/sessions   admin -> {"vm","sessions":[{session,holder,start_ms,records}]}
//
// The uploader is the grant's holder: a session is bound to it, so one host
// cannot write into another's session.
//
// Thread safety: Handle() from any number of threads at once.
// Failure: never throws; refusals are error Replies.
#pragma once

#include <string>

#include "storage/api_services.h"
#include "storage/reply.h"

namespace affinity::storage {

struct ApiRequest;

class AccessHandler {
 public:
  static constexpr size_t kMaxBodyBytes = 1 << 20;

  explicit AccessHandler(ApiServices services) : services_(services) {}
  Reply Upload(const ApiRequest& request, const std::string& vm) const;
  Reply Sessions(const ApiRequest& request, const std::string& vm) const;

 private:
  const ApiServices services_;
};

}  // namespace affinity::storage
