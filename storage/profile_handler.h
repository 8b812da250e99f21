// ProfileHandler: the affinity profile in the migration handshake
// (docs/profile.md, "Serving").
//
//   GET /v1/vms/{vm}/profile   a grant for vm (any operation) or admin ->
//       the encoded profile (profile/profile_codec.h), Content-Type
//       application/vnd.affinity.profile, header Affinity-Profile-Id.
//       Built now, for now, from the VM's last 64 sessions; the *live*
//       session is the one that uploaded most recently (within 10 minutes),
//       from another host than the caller: the run being migrated. Runs of
//       reads the storage host served that no upload covers (ServedLog) are
//       history too. With no
//       history, an imported profile is served as it is; with neither, an
//       empty profile (the destination then prefetches nothing).
//   PUT /v1/vms/{vm}/profile   admin; body: an encoded profile of that vm ->
//       {"vm","profile_id","blocks"}; stored, served while vm has no history.
//
// Thread safety: Handle from any thread (AccessLog serializes).
// Failure: refusals and bad profiles are error Replies; never throws.
#pragma once

#include <string>

#include "storage/api_services.h"
#include "storage/reply.h"

namespace affinity::storage {

struct ApiRequest;

class ProfileHandler {
 public:
  static constexpr size_t kHistorySessions = 64;
  static constexpr size_t kServedSessions = 16;  // runs of served reads no upload covers
  static constexpr int64_t kLiveWindowMs = 10 * 60 * 1000;

  explicit ProfileHandler(ApiServices services) : services_(services) {}
  Reply Get(const ApiRequest& request, const std::string& vm) const;
  Reply Import(const ApiRequest& request, const std::string& vm) const;

 private:
  const ApiServices services_;
};

}  // namespace affinity::storage
