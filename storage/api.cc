#include "storage/api.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/digest.h"

namespace affinity::storage {
namespace {

constexpr const char* kVersion = "0.1.0";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status PreadAll(int fd, uint64_t offset, char* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, out + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read image");
    if (n == 0) return Unavailable("image shrank while being read");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> DecodePathSegments(std::string_view target) {
  target = target.substr(0, target.find('?'));
  if (target.empty() || target.front() != '/') return InvalidArgument("request target must start with '/'");
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 1; i <= target.size(); ++i) {
    if (i == target.size() || target[i] == '/') {
      out.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    char c = target[i];
    if (c == '%') {
      if (i + 2 >= target.size()) return InvalidArgument("truncated %-escape in path");
      int hi = HexValue(target[i + 1]), lo = HexValue(target[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgument("bad %-escape in path");
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return InvalidArgument("NUL in path");
      cur += decoded;
      i += 2;
    } else {
      cur += c;
    }
  }
  if (!out.empty() && out.back().empty()) out.pop_back();  // trailing slash
  return out;
}

Reply Api::Json(int status, std::string body) {
  Reply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.content_length = body.size();
  r.body = std::move(body);
  return r;
}

Reply Api::Error(int status, const std::string& code, const std::string& reason) {
  metrics_->CountError();
  spdlog::info("refused with {} {}: {}", status, code, reason);
  Reply r = Json(status, nlohmann::json{{"error", code}, {"reason", reason}}.dump());
  r.headers.emplace_back("Affinity-Error", code);
  return r;
}

Reply Api::FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound: return Error(404, "not_found", s.message());
    case StatusCode::kInvalidArgument: return Error(400, "bad_name", s.message());
    case StatusCode::kPermissionDenied: return Error(403, "forbidden", s.message());
    default: return Error(500, "internal", s.ToString());
  }
}

Reply Api::Handle(const ApiRequest& request) {
  auto segments = DecodePathSegments(request.target);
  if (!segments.ok()) return Error(400, "bad_request", segments.status().message());
  const auto& seg = *segments;
  bool is_get = request.method == "GET";
  bool is_head = request.method == "HEAD";
  auto method_not_allowed = [&](const char* allow) {
    Reply r = Error(405, "method_not_allowed", request.method + " is not allowed here (allowed: " + allow + ")");
    r.headers.emplace_back("Allow", allow);
    return r;
  };
  if (seg.size() < 2 || seg[0] != "v1") return Error(404, "not_found", "no such endpoint: " + request.target);

  if (seg.size() == 2 && seg[1] == "health") {
    if (!is_get) return method_not_allowed("GET");
    return Json(200, nlohmann::json{{"status", "ok"}, {"version", kVersion}}.dump());
  }
  if (seg.size() == 2 && seg[1] == "metrics") {
    if (!is_get) return method_not_allowed("GET");
    return Json(200, metrics_->ToJson());
  }
  if (seg.size() == 2 && seg[1] == "vms") {
    if (!is_get) return method_not_allowed("GET");
    auto vms = store_->ListVms();
    if (!vms.ok()) return FromStatus(vms.status());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& vm : *vms) list.push_back({{"name", vm}});
    return Json(200, nlohmann::json{{"vms", list}}.dump());
  }
  if (seg.size() == 4 && seg[1] == "vms" && seg[3] == "images") {
    if (!is_get) return method_not_allowed("GET");
    auto images = store_->ListImages(seg[2]);
    if (!images.ok()) return FromStatus(images.status());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& i : *images) list.push_back({{"name", i.name}, {"size", i.size}, {"generation", i.generation}});
    return Json(200, nlohmann::json{{"vm", seg[2]}, {"images", list}}.dump());
  }
  if (seg.size() == 5 && seg[1] == "vms" && seg[3] == "images") {
    if (!is_get && !is_head) return method_not_allowed("GET, HEAD");
    return Image(request, seg[2], seg[4]);
  }
  return Error(404, "not_found", "no such endpoint: " + request.target);
}

Reply Api::Image(const ApiRequest& request, const std::string& vm, const std::string& image) {
  auto opened = store_->Open(vm, image);
  if (!opened.ok()) return FromStatus(opened.status());
  std::shared_ptr<OpenImage> file = std::move(opened).value();
  uint64_t size = file->info().size;
  ByteRange range{0, size};
  int status = 200;
  if (request.range) {
    auto parsed = ParseRangeHeader(*request.range, size);
    if (!parsed.ok()) {
      if (parsed.status().code() == StatusCode::kOutOfRange) {
        Reply r = Error(416, "range_not_satisfiable", parsed.status().message() + " (size " + std::to_string(size) + ")");
        r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return r;
      }
      return Error(400, "bad_range", parsed.status().message());
    }
    range = *parsed;
    status = 206;
  }
  Reply r;
  r.status = status;
  r.is_data = true;
  r.head_only = request.method == "HEAD";
  r.content_length = range.length;
  r.headers.emplace_back("Content-Type", "application/octet-stream");
  r.headers.emplace_back("Accept-Ranges", "bytes");
  r.headers.emplace_back("Affinity-Generation", std::to_string(file->info().generation));
  if (status == 206) r.headers.emplace_back("Content-Range", FormatContentRange(range, size));

  std::string key = vm + "/" + image;
  if (range.length <= kMaxBufferedRange) {
    r.body.resize(range.length);
    Status s = PreadAll(file->fd(), range.offset, r.body.data(), r.body.size());
    if (!s.ok()) return Error(500, "internal", s.ToString());
    r.headers.emplace_back("Content-Digest", ContentDigestValue(Sha256(r.body)));
    if (r.head_only) {
      r.body.clear();
    } else {
      if (!r.body.empty() && faults_->TakeCorruption()) {
        r.body[r.body.size() / 2] = static_cast<char>(r.body[r.body.size() / 2] ^ 0x01);
        spdlog::warn("test fault: corrupted the body of {} {}", key, FormatRangeHeader(range));
      }
      metrics_->CountData(key, range.length);
    }
    return r;
  }
  // Large range: hash pass now, stream pass in the transport.
  Sha256Hasher hasher;
  std::string buf(1 << 20, '\0');
  for (uint64_t pos = range.offset; pos < range.end();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), range.end() - pos));
    Status s = PreadAll(file->fd(), pos, buf.data(), n);
    if (!s.ok()) return Error(500, "internal", s.ToString());
    hasher.Update(std::string_view(buf.data(), n));
    pos += n;
  }
  r.headers.emplace_back("Content-Digest", ContentDigestValue(hasher.Final()));
  if (!r.head_only) {
    r.file = file;
    r.file_range = range;
    r.corrupt_stream = faults_->TakeCorruption();
    metrics_->CountData(key, range.length);
  }
  return r;
}

}  // namespace affinity::storage
