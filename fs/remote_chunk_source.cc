#include "fs/remote_chunk_source.h"

namespace affinity::fs {

void RemoteChunkSource::Fetch(const std::string& image, ByteRange range, fetcher::Priority priority,
                              Deadline deadline, Done done) {
  fetcher::Request req;
  req.path = ImagePath(vm_, image);
  req.range = range;
  req.priority = priority;
  req.deadline = deadline;
  client_->Submit(std::move(req), [this, range, image, done = std::move(done)](fetcher::FetchOutcome outcome) {
    if (!outcome.status.ok()) {
      const int http = outcome.failure.http_status;
      if ((http == 401 || http == 403) && on_refusal_) on_refusal_(outcome.failure.server_error);
      done(outcome.status.WithContext("fetch " + image + " " + FormatRangeHeader(range)));
      return;
    }
    if (outcome.response.body.size() != range.length) {
      done(Corruption("fetch " + image + " " + FormatRangeHeader(range) + ": got " +
                      std::to_string(outcome.response.body.size()) + " bytes"));
      return;
    }
    done(std::move(outcome.response.body));
  });
}

void RemoteChunkSource::Store(const std::string& image, uint64_t offset, std::string bytes, Deadline deadline,
                              std::function<void(const Status&)> done) {
  fetcher::Request req;
  req.method = "PUT";
  req.path = ImagePath(vm_, image);
  // Ahead of prefetch, behind a VM waiting on a read.
  req.priority = fetcher::Priority::kCritical;
  req.deadline = deadline;
  const std::string what = "write back " + image + " bytes " + std::to_string(offset) + "+" + std::to_string(bytes.size());
  req.headers.push_back("Content-Range: bytes " + std::to_string(offset) + "-" +
                        std::to_string(offset + bytes.size() - 1) + "/*");
  req.body = std::move(bytes);
  client_->Submit(std::move(req), [this, what, done = std::move(done)](fetcher::FetchOutcome outcome) {
    if (!outcome.status.ok()) {
      const int http = outcome.failure.http_status;
      if ((http == 401 || http == 403) && on_refusal_) on_refusal_(outcome.failure.server_error);
      done(outcome.status.WithContext(what));
      return;
    }
    done(Status::Ok());
  });
}

}  // namespace affinity::fs
