#include "profile/access_batch.h"

#include <nlohmann/json.hpp>

#include "common/names.h"
#include "common/random_id.h"

namespace affinity::profile {
namespace {

using nlohmann::json;

// Offsets and lengths beyond 2^60 are nonsense for a disk image.
constexpr uint64_t kMaxOffset = uint64_t{1} << 60;
constexpr uint64_t kMaxLength = uint64_t{1} << 32;

Status Bad(size_t i, const std::string& what) {
  return InvalidArgument("access record " + std::to_string(i) + ": " + what);
}

}  // namespace

const char* SessionKindName(SessionKind kind) { return kind == SessionKind::kArrival ? "arrival" : "start"; }

std::string EncodeAccessBatch(const AccessBatch& b) {
  json records = json::array();
  for (const AccessRecord& r : b.records) {
    records.push_back({r.seq, r.image, r.offset, r.length, r.op == AccessOp::kWrite ? "W" : "R", r.t_us});
  }
  return json{{"session", b.session},
              {"session_start_ms", b.session_start_ms},
              {"kind", SessionKindName(b.kind)},
              {"records", std::move(records)}}
      .dump();
}

Result<AccessBatch> DecodeAccessBatch(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("the access batch is not a JSON object");
  AccessBatch b;
  auto session = j.find("session");
  if (session == j.end() || !session->is_string()) return InvalidArgument("'session' is missing or not a string");
  b.session = session->get<std::string>();
  if (b.session.size() < 3 || b.session.size() > 64 || b.session.rfind("s-", 0) != 0) {
    return InvalidArgument("'session' must be \"s-\" and up to 62 more characters");
  }
  for (char c : b.session) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return InvalidArgument("'session' has a character outside [A-Za-z0-9-]");
    }
  }
  auto start = j.find("session_start_ms");
  if (start == j.end() || !start->is_number_integer() || start->get<int64_t>() < 0) {
    return InvalidArgument("'session_start_ms' is missing or not a non-negative integer");
  }
  b.session_start_ms = start->get<int64_t>();
  if (auto kind = j.find("kind"); kind != j.end()) {
    if (!kind->is_string() || (*kind != "start" && *kind != "arrival")) {
      return InvalidArgument("'kind' must be \"start\" or \"arrival\"");
    }
    b.kind = *kind == "arrival" ? SessionKind::kArrival : SessionKind::kStart;
  }
  auto records = j.find("records");
  if (records == j.end() || !records->is_array()) return InvalidArgument("'records' is missing or not an array");
  if (records->size() > kMaxRecordsPerBatch) {
    return InvalidArgument("a batch holds at most " + std::to_string(kMaxRecordsPerBatch) + " records");
  }
  b.records.reserve(records->size());
  for (size_t i = 0; i < records->size(); ++i) {
    const json& r = (*records)[i];
    if (!r.is_array() || r.size() != 6) return Bad(i, "not [seq, image, offset, length, op, t_us]");
    for (size_t k : {size_t{0}, size_t{2}, size_t{3}, size_t{5}}) {
      if (!r[k].is_number_unsigned()) return Bad(i, "field " + std::to_string(k) + " is not a non-negative integer");
    }
    if (!r[1].is_string() || !r[4].is_string()) return Bad(i, "image and op must be strings");
    AccessRecord a;
    a.seq = r[0].get<uint64_t>();
    a.image = r[1].get<std::string>();
    if (Status s = ValidateName("image", a.image); !s.ok()) return Bad(i, s.message());
    a.offset = r[2].get<uint64_t>();
    a.length = r[3].get<uint64_t>();
    if (a.offset > kMaxOffset || a.length == 0 || a.length > kMaxLength) return Bad(i, "offset or length out of range");
    const std::string op = r[4].get<std::string>();
    if (op != "R" && op != "W") return Bad(i, "op must be \"R\" or \"W\"");
    a.op = op == "W" ? AccessOp::kWrite : AccessOp::kRead;
    a.t_us = r[5].get<uint64_t>();
    b.records.push_back(std::move(a));
  }
  return b;
}

std::string NewSessionId() { return RandomId("s-"); }

}  // namespace affinity::profile
