// WriteHandler: PUT /v1/vms/{vm}/images/{image} with
// `Content-Range: bytes <first>-<last>/*` and exactly that many body bytes
// (docs/protocol.md, "Writes").
//
// Order, which makes ownership and commit exact:
//   take the VM's write lock shared (vm_write_locks.h)
//   -> authorize: a write grant held by the VM's owner at the current epoch
//   -> write the bytes and fdatasync (VolumeStore::WriteAt)
//   -> record the written blocks (ChunkTracker::RecordWrite)
//   -> 204, only now: the write is durable and tracked.
// A refusal changes nothing. A write whose bytes reached the file but could
// not be tracked answers 500 and marks the tracker incomplete, and from then
// on every commit is refused (the stale list could miss those blocks):
// such a migration must be aborted, never committed blind.
//
// Thread safety: Handle() from any number of threads at once.
// Failure: never throws; refusals are error Replies.
#pragma once

#include <string>

#include "storage/api_services.h"
#include "storage/reply.h"

namespace affinity::storage {

struct ApiRequest;

class WriteHandler {
 public:
  // Larger PUT bodies are refused with 413 (the HTTP layer enforces it too).
  static constexpr uint64_t kMaxWriteBytes = 16ull << 20;

  explicit WriteHandler(ApiServices services) : services_(services) {}

  Reply Handle(const ApiRequest& request, const std::string& vm, const std::string& image) const;

 private:
  const ApiServices services_;
};

}  // namespace affinity::storage
