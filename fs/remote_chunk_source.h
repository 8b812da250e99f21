// RemoteChunkSource: ChunkSource and ChunkSink over the storage host's HTTPS
// API (GET /v1/vms/{vm}/images/{image} with a Range; PUT with a
// Content-Range for the write-back; docs/protocol.md).
//
// Thread safety: as HttpsClient (any thread).
#pragma once

#include <memory>
#include <functional>
#include <string>

#include "fetcher/https_client.h"
#include "fs/chunk_sink.h"
#include "fs/chunk_source.h"

namespace affinity::fs {

class RemoteChunkSource final : public ChunkSource, public ChunkSink {
 public:
  using Deadline = ChunkSource::Deadline;  // the same time point for both interfaces
  // `on_refusal` (may be empty) is told the code of every grant refusal a
  // fetch meets (revoked, stale_epoch, expired, ...), on the fetch thread.
  RemoteChunkSource(fetcher::HttpsClient* client, std::string vm,
                    std::function<void(const std::string&)> on_refusal = {})
      : client_(client), vm_(std::move(vm)), on_refusal_(std::move(on_refusal)) {}
  void Fetch(const std::string& image, ByteRange range, fetcher::Priority priority, Deadline deadline,
             Done done) override;
  void Store(const std::string& image, uint64_t offset, std::string bytes, Deadline deadline,
             std::function<void(const Status&)> done) override;

  static std::string ImagePath(const std::string& vm, const std::string& image) {
    return "/v1/vms/" + vm + "/images/" + image;
  }

 private:
  fetcher::HttpsClient* client_;
  std::string vm_;
  std::function<void(const std::string&)> on_refusal_;
};

}  // namespace affinity::fs
