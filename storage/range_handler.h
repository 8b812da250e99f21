// RangeHandler: GET and HEAD of /v1/vms/{vm}/images/{image}, with or without
// a `Range: bytes=...` header (docs/protocol.md, "Image data").
//
// Algorithm: open the image (VolumeStore: safe open + generation), parse the
// single range against its size (common/byte_range.h), then
//   * ranges up to `max_buffered` bytes (16 MiB): pread into memory, hash,
//     reply from memory;
//   * larger ranges: pass 1 hashes the range in 1 MiB pieces here; the
//     transport streams pass 2 from the still-open file in pieces. Memory per
//     request stays bounded whatever the client asks for (a whole 512 MiB
//     image included). If the file changes between the passes, the client's
//     digest check catches it.
// Every reply carries Content-Digest (SHA-256, RFC 9530; common/digest.h)
// over exactly the bytes of its body, Affinity-Generation, Accept-Ranges,
// Content-Type; a 206 also Content-Range. HEAD gets the same headers (digest
// included) and no body. The corrupt-body test fault is applied here, after
// hashing. The data request is counted in Metrics when its reply is built.
//
// Thread safety: Handle() from any number of threads at once (no state of
// its own). It blocks on disk reads and hashing (an I/O thread, up to one
// pass over the range).
// Failure: never throws by design; refusals come back as error Replies
// (not_found, forbidden, bad_name, bad_range, range_not_satisfiable with
// `Content-Range: bytes */SIZE`, internal on a read error).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "storage/chunk_tracker.h"
#include "storage/metrics.h"
#include "storage/reply.h"
#include "storage/test_faults.h"
#include "storage/volume_store.h"

namespace affinity::storage {

class ServedLog;

class RangeHandler {
 public:
  static constexpr uint64_t kDefaultMaxBufferedRange = 16ull << 20;
  static constexpr size_t kHashPiece = 1 << 20;

  // All four must outlive the handler.
  RangeHandler(const VolumeStore* store, Metrics* metrics, TestFaults* faults, ChunkTracker* tracker,
               uint64_t max_buffered = kDefaultMaxBufferedRange)
      : store_(store), metrics_(metrics), faults_(faults), tracker_(tracker), max_buffered_(max_buffered) {}

  // `migration`: the id of the open migration whose grant authorized this
  // GET (empty otherwise); what it serves is recorded in the tracker before
  // the reply leaves (prefetch tracking, docs/grants.md).
  // `reader`: the holder of a grant reading for its VM (not prefetching);
  // what it is served is noted in the served log, if one is set.
  Reply Handle(bool head, const std::string& vm, const std::string& image,
               const std::optional<std::string>& range_header, const std::string& migration = {},
               const std::string& reader = {}) const;
  void set_served_log(ServedLog* served) { served_ = served; }

 private:
  Status Track(const std::string& migration, const std::string& vm, const std::string& image,
               const ByteRange& range, uint64_t served_seq, uint64_t generation) const;

  const VolumeStore* const store_;
  Metrics* const metrics_;
  ServedLog* served_ = nullptr;
  TestFaults* const faults_;
  ChunkTracker* const tracker_;
  const uint64_t max_buffered_;
};

}  // namespace affinity::storage
