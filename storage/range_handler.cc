#include "storage/range_handler.h"

#include "storage/served_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/digest.h"
#include "storage/api_error.h"

namespace affinity::storage {
namespace {

// A Range header as quoted in a reason (a header may be up to 16 KiB long).
std::string QuotedRange(const std::string& value) {
  constexpr size_t kMax = 100;
  return "'" + (value.size() <= kMax ? value : value.substr(0, kMax) + "...") + "'";
}

}  // namespace

Reply RangeHandler::Handle(bool head, const std::string& vm, const std::string& image,
                           const std::optional<std::string>& range_header, const std::string& migration,
                           const std::string& reader) const {
  // Taken before any byte is read: see chunk_tracker.h for why this order is exact.
  const uint64_t served_seq = tracker_->CurrentWriteSeq();
  auto opened = store_->OpenImageFile(vm, image);
  if (!opened.ok()) return ErrorReplyFromStatus(opened.status());
  std::shared_ptr<const OpenImage> file = std::move(opened).value();
  const uint64_t size = file->info().size;

  ByteRange range{0, size};
  bool partial = false;
  if (range_header) {
    auto parsed = ParseRangeHeader(*range_header, size);
    if (!parsed.ok()) {
      if (parsed.status().code() == StatusCode::kOutOfRange) {
        Reply r = ErrorReply(ApiError::kRangeNotSatisfiable, "Range " + QuotedRange(*range_header) +
                                                                 " cannot be served: " + parsed.status().message() +
                                                                 " (image size " + std::to_string(size) + ")");
        r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return r;
      }
      return ErrorReply(ApiError::kBadRange, "Range " + QuotedRange(*range_header) + ": " + parsed.status().message());
    }
    range = *parsed;
    partial = true;
  }

  Reply r;
  r.status = partial ? 206 : 200;
  r.head_only = head;
  r.content_length = range.length;
  r.delay = head ? std::chrono::microseconds(0) : faults_->ReplyDelay(range.length);
  r.headers.emplace_back("Content-Type", "application/octet-stream");
  r.headers.emplace_back("Accept-Ranges", "bytes");
  r.headers.emplace_back("Affinity-Generation", std::to_string(file->info().generation));
  if (partial) r.headers.emplace_back("Content-Range", FormatContentRange(range, size));

  const std::string key = vm + "/" + image;
  if (range.length <= max_buffered_) {
    r.body.resize(range.length);
    Status s = file->ReadAt(range.offset, r.body);
    if (!s.ok()) return ErrorReply(ApiError::kInternal, "reading " + key + ": " + s.message());
    r.headers.emplace_back("Content-Digest", ContentDigestValue(Sha256(r.body)));
    if (head) {
      r.body.clear();
      return r;
    }
    if (!r.body.empty() && faults_->TakeCorruption()) {
      r.body[r.body.size() / 2] = static_cast<char>(r.body[r.body.size() / 2] ^ 0x01);
      spdlog::warn("test fault: corrupted one byte of {} {} after hashing", key, FormatRangeHeader(range));
    }
    if (Status t = Track(migration, vm, image, range, served_seq, file->info().generation); !t.ok()) {
      return ErrorReply(ApiError::kInternal, "cannot record what migration " + migration + " was served: " + t.message());
    }
    metrics_->CountData(key, range.length);
    if (served_ != nullptr && !reader.empty()) served_->Note(reader, vm, image, range);
    return r;
  }

  // Pass 1: hash the range piece by piece; pass 2 (the transport) streams it.
  Sha256Hasher hasher;
  std::vector<char> piece(std::min<uint64_t>(kHashPiece, range.length));
  for (uint64_t pos = range.offset; pos < range.end();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), range.end() - pos));
    Status s = file->ReadAt(pos, std::span<char>(piece.data(), n));
    if (!s.ok()) return ErrorReply(ApiError::kInternal, "reading " + key + ": " + s.message());
    hasher.Update(std::string_view(piece.data(), n));
    pos += n;
  }
  r.headers.emplace_back("Content-Digest", ContentDigestValue(hasher.Final()));
  if (head) return r;
  r.stream_file = std::move(file);
  r.stream_range = range;
  r.corrupt_stream = faults_->TakeCorruption();
  if (r.corrupt_stream) {
    spdlog::warn("test fault: will corrupt one byte of streamed {} {} after hashing", key, FormatRangeHeader(range));
  }
  if (Status t = Track(migration, vm, image, range, served_seq, r.stream_file->info().generation); !t.ok()) {
    return ErrorReply(ApiError::kInternal, "cannot record what migration " + migration + " was served: " + t.message());
  }
  metrics_->CountData(key, range.length);
  if (served_ != nullptr && !reader.empty()) served_->Note(reader, vm, image, range);
  return r;
}

Status RangeHandler::Track(const std::string& migration, const std::string& vm, const std::string& image,
                           const ByteRange& range, uint64_t served_seq, uint64_t generation) const {
  if (migration.empty()) return Status::Ok();
  return tracker_->RecordServed(migration, vm, image, range, served_seq, generation);
}

}  // namespace affinity::storage
