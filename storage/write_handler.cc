#include "storage/write_handler.h"

#include <spdlog/spdlog.h>

#include <shared_mutex>

#include "common/byte_range.h"
#include "storage/api_error.h"
#include "storage/api_router.h"

namespace affinity::storage {

Reply WriteHandler::Handle(const ApiRequest& request, const std::string& vm, const std::string& image) const {
  if (!request.content_range) {
    return ErrorReply(ApiError::kBadRequest, "a PUT needs 'Content-Range: bytes <first>-<last>/*'");
  }
  auto range = ParseContentRange(*request.content_range);
  if (!range.ok()) return ErrorReply(ApiError::kBadRange, "Content-Range: " + range.status().message());
  if (range->length > kMaxWriteBytes) {
    return ErrorReply(ApiError::kPayloadTooLarge, "a write may carry at most " + std::to_string(kMaxWriteBytes) +
                                                      " bytes; send " + std::to_string(range->length) + " in pieces");
  }
  if (request.body.size() != range->length) {
    return ErrorReply(ApiError::kBadRequest, "Content-Range announces " + std::to_string(range->length) +
                                                 " bytes but the body has " + std::to_string(request.body.size()));
  }

  std::shared_lock commit_guard(services_.write_locks->For(vm));
  AuthVerdict verdict =
      services_.authorizer->Authorize(request.peer, request.authorization, vm, image, acl::Operation::kWrite);
  if (auto* denial = std::get_if<acl::GrantDenial>(&verdict)) return DenialReply(*denial);

  auto generation = services_.store->WriteAt(vm, image, range->offset, request.body, request.client_gone);
  if (!generation.ok()) {
    if (generation.status().code() == StatusCode::kCancelled) spdlog::warn("{}", generation.status().message());
    return ErrorReplyFromStatus(generation.status());
  }
  Status tracked = services_.tracker->RecordWrite(vm, image, *range);
  if (!tracked.ok()) {
    return ErrorReply(ApiError::kInternal, "the bytes were written but could not be tracked (" + tracked.message() +
                                               "); retry the write");
  }
  services_.metrics->CountData(vm + "/" + image, 0);
  Reply r;
  r.status = 204;
  r.headers.emplace_back("Affinity-Generation", std::to_string(*generation));
  r.headers.emplace_back("Affinity-Write-Seq", std::to_string(services_.tracker->CurrentWriteSeq()));
  return r;
}

}  // namespace affinity::storage
