#include "acl/grant_claims.h"

#include <array>
#include <nlohmann/json.hpp>

#include "acl/holder_fingerprint.h"
#include "common/names.h"
#include "common/random_id.h"

namespace affinity::acl {
namespace {

using nlohmann::json;

constexpr std::array<Operation, 3> kOperations = {Operation::kRead, Operation::kPrefetch, Operation::kWrite};
// Times beyond year 9999 are nonsense and would overflow arithmetic on them.
constexpr int64_t kMaxTime = 253402300799;

Status Bad(const std::string& what) { return InvalidArgument("grant claim " + what); }

Result<std::string> StringClaim(const json& j, const char* name, bool required) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (required) return Bad(std::string("'") + name + "' is missing");
    return std::string();
  }
  if (!it->is_string()) return Bad(std::string("'") + name + "' is not a string");
  return it->get<std::string>();
}

Result<int64_t> TimeClaim(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return Bad(std::string("'") + name + "' is missing");
  if (!it->is_number_integer()) return Bad(std::string("'") + name + "' is not an integer");
  int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(kMaxTime)
                  ? kMaxTime + 1
                  : it->get<int64_t>();
  if (v < 0 || v > kMaxTime) return Bad(std::string("'") + name + "' is out of range");
  return v;
}

}  // namespace

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kRead:
      return "read";
    case Operation::kPrefetch:
      return "prefetch";
    case Operation::kWrite:
      return "write";
  }
  return "?";
}

Result<Operation> ParseOperation(std::string_view name) {
  for (Operation op : kOperations) {
    if (OperationName(op) == name) return op;
  }
  return InvalidArgument("unknown operation '" + std::string(name) + "' (read, prefetch, write)");
}

Result<uint8_t> ParseOperationList(std::string_view list) {
  uint8_t ops = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    auto op = ParseOperation(list.substr(0, comma));
    if (!op.ok()) return op.status();
    ops |= static_cast<uint8_t>(*op);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (ops == 0) return InvalidArgument("the operation list is empty (read, prefetch, write)");
  return ops;
}

std::string OperationListString(uint8_t ops) {
  std::string out;
  for (Operation op : kOperations) {
    if ((ops & static_cast<uint8_t>(op)) == 0) continue;
    if (!out.empty()) out += ',';
    out += OperationName(op);
  }
  return out;
}

bool GrantClaims::CoversImage(std::string_view image) const {
  for (const std::string& i : images) {
    if (i == kEveryImage || i == image) return true;
  }
  return false;
}

std::string ClaimsToJson(const GrantClaims& c) {
  json ops = json::array();
  for (Operation op : kOperations) {
    if (c.Allows(op)) ops.push_back(OperationName(op));
  }
  json j = {{"jti", c.grant_id}, {"iss", c.issuer},     {"holder", c.holder},   {"vm", c.vm},
            {"images", c.images}, {"ops", ops},          {"iat", c.issued_at},   {"nbf", c.not_before},
            {"exp", c.expires},   {"epoch", c.epoch}};
  if (!c.migration.empty()) j["mig"] = c.migration;
  return j.dump();
}

Result<GrantClaims> ClaimsFromJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("grant payload is not JSON");
  if (!j.is_object()) return InvalidArgument("grant payload is not a JSON object");
  GrantClaims c;
  auto s = StringClaim(j, "jti", true);
  if (!s.ok()) return s.status();
  c.grant_id = *s;
  if (Status v = ValidateId("grant claim 'jti'", c.grant_id); !v.ok()) return v;
  s = StringClaim(j, "iss", true);
  if (!s.ok()) return s.status();
  c.issuer = *s;
  if (Status v = ValidateId("grant claim 'iss'", c.issuer); !v.ok()) return v;
  s = StringClaim(j, "holder", true);
  if (!s.ok()) return s.status();
  c.holder = *s;
  if (!IsFingerprint(c.holder)) return Bad("'holder' is not a 64-hex-digit key fingerprint");
  s = StringClaim(j, "vm", true);
  if (!s.ok()) return s.status();
  c.vm = *s;
  if (Status v = ValidateName("vm", c.vm); !v.ok()) return Bad("'vm': " + v.message());
  s = StringClaim(j, "mig", false);
  if (!s.ok()) return s.status();
  c.migration = *s;
  if (!c.migration.empty()) {
    if (Status v = ValidateId("grant claim 'mig'", c.migration); !v.ok()) return v;
  }

  auto images = j.find("images");
  if (images == j.end() || !images->is_array()) return Bad("'images' is missing or not an array");
  if (images->empty() || images->size() > kMaxImagesPerGrant) {
    return Bad("'images' must name 1.." + std::to_string(kMaxImagesPerGrant) + " images");
  }
  for (const json& i : *images) {
    if (!i.is_string()) return Bad("'images' holds a non-string");
    std::string name = i.get<std::string>();
    if (name != kEveryImage) {
      if (Status v = ValidateName("image", name); !v.ok()) return Bad("'images': " + v.message());
    }
    c.images.push_back(std::move(name));
  }

  auto ops = j.find("ops");
  if (ops == j.end() || !ops->is_array() || ops->empty()) return Bad("'ops' is missing, empty or not an array");
  for (const json& o : *ops) {
    if (!o.is_string()) return Bad("'ops' holds a non-string");
    auto op = ParseOperation(o.get<std::string>());
    if (!op.ok()) return Bad("'ops': " + op.status().message());
    c.ops |= static_cast<uint8_t>(*op);
  }

  for (auto [name, field] : {std::pair{"iat", &c.issued_at}, {"nbf", &c.not_before}, {"exp", &c.expires}}) {
    auto t = TimeClaim(j, name);
    if (!t.ok()) return t.status();
    *field = *t;
  }
  if (c.expires <= c.not_before) return Bad("'exp' is not after 'nbf'");

  auto epoch = j.find("epoch");
  if (epoch == j.end() || !epoch->is_number_unsigned()) return Bad("'epoch' is missing or not a non-negative integer");
  c.epoch = epoch->get<uint64_t>();
  return c;
}

std::string NewGrantId() { return RandomId("g-"); }

}  // namespace affinity::acl
