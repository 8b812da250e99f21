#include "profile/signature_db.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "profile/path_glob.h"

namespace affinity::profile {

const char* SignaturePhaseName(SignaturePhase p) {
  switch (p) {
    case SignaturePhase::kBoot: return "boot";
    case SignaturePhase::kServiceStart: return "service-start";
    case SignaturePhase::kSteady: return "steady";
  }
  return "?";
}

const char* SignaturePriorityName(SignaturePriority p) {
  switch (p) {
    case SignaturePriority::kCritical: return "critical";
    case SignaturePriority::kEarly: return "early";
    case SignaturePriority::kBackground: return "background";
  }
  return "?";
}

bool ParseSignaturePhase(std::string_view name, SignaturePhase* out) {
  for (auto p : {SignaturePhase::kBoot, SignaturePhase::kServiceStart, SignaturePhase::kSteady}) {
    if (name == SignaturePhaseName(p)) {
      *out = p;
      return true;
    }
  }
  return false;
}

namespace {

using nlohmann::json;

// Errors carry "<file>: <field>: <what>".
class Checker {
 public:
  explicit Checker(const std::string& file) : file_(file) {}

  Status Error(const std::string& field, const std::string& what) const {
    return InvalidArgument(file_ + ": " + (field.empty() ? "" : field + ": ") + what);
  }

  Status Keys(const json& obj, const std::string& field, std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, value] : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Error(field.empty() ? key : field + "." + key, "unknown key");
      }
    }
    return Status::Ok();
  }

  // An optional string member; `out` untouched if absent.
  Status OptString(const json& obj, const std::string& key, std::string* out) const {
    auto it = obj.find(key);
    if (it == obj.end()) return Status::Ok();
    if (!it->is_string()) return Error(key, "must be a string");
    *out = it->get<std::string>();
    return Status::Ok();
  }

  Status Count(const std::string& field) {
    if (++patterns_ > kMaxSignaturePatterns) {
      return Error(field, "more than " + std::to_string(kMaxSignaturePatterns) + " patterns");
    }
    return Status::Ok();
  }

 private:
  const std::string& file_;
  size_t patterns_ = 0;
};

bool ValidApplicationName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '+' && c != '-'))) return false;
  }
  return true;
}

// A dpkg package name (Debian policy §5.6.1: [a-z0-9][a-z0-9+.-]+), with
// fnmatch syntax allowed so one rule can name "mysql-server-core-*".
bool ValidPackagePattern(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-' ||
                    c == '*' || c == '?' || c == '[' || c == ']' || c == '!';
    if (!ok) return false;
  }
  return true;
}

// A systemd unit name ("nginx.service", "postgresql@*.service"): no path.
bool ValidUnitPattern(std::string_view s) {
  if (s.empty() || s.size() > 256 || s.find('/') != std::string_view::npos || s[0] == '.') return false;
  if (s.find('.') == std::string_view::npos) return false;  // needs a suffix
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\') return false;
  }
  return true;
}

Status ParseDetect(const json& arr, Checker& ck, Signature& sig) {
  if (!arr.is_array() || arr.empty()) return ck.Error("detect", "must be a non-empty array");
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string field = "detect[" + std::to_string(i) + "]";
    const json& rule = arr[i];
    if (!rule.is_object() || rule.size() != 1) {
      return ck.Error(field, "must be an object with one of \"dpkg\", \"path\", \"unit\"");
    }
    const std::string key = rule.begin().key();
    const json& value = rule.front();
    const std::string f = field + "." + key;
    if (!value.is_string()) return ck.Error(f, "must be a string");
    if (Status st = ck.Count(f); !st.ok()) return st;
    DetectRule r;
    r.value = value.get<std::string>();
    if (key == "dpkg") {
      r.kind = DetectRule::Kind::kDpkg;
      if (!ValidPackagePattern(r.value)) return ck.Error(f, "bad package name \"" + r.value + "\"");
    } else if (key == "path") {
      r.kind = DetectRule::Kind::kPath;
      if (Status st = ValidateGlob(r.value); !st.ok()) return ck.Error(f, st.message());
    } else if (key == "unit") {
      r.kind = DetectRule::Kind::kUnit;
      if (!ValidUnitPattern(r.value)) return ck.Error(f, "bad unit name \"" + r.value + "\"");
    } else {
      return ck.Error(f, "unknown rule (dpkg | path | unit)");
    }
    sig.detect.push_back(std::move(r));
  }
  return Status::Ok();
}

Status ParseStrings(const json& obj, const std::string& key, const std::string& field, Checker& ck,
                    std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::Ok();
  if (!it->is_array()) return ck.Error(field + "." + key, "must be an array of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string f = field + "." + key + "[" + std::to_string(i) + "]";
    if (!(*it)[i].is_string()) return ck.Error(f, "must be a string");
    if (Status st = ck.Count(f); !st.ok()) return st;
    std::string v = (*it)[i].get<std::string>();
    if (key == "paths") {
      if (Status st = ValidateGlob(v); !st.ok()) return ck.Error(f, st.message());
    } else if (!ValidPackagePattern(v)) {
      return ck.Error(f, "bad package name \"" + v + "\"");
    }
    out->push_back(std::move(v));
  }
  return Status::Ok();
}

Status ParseNeeds(const json& arr, Checker& ck, Signature& sig) {
  if (!arr.is_array() || arr.empty()) return ck.Error("needs", "must be a non-empty array");
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string field = "needs[" + std::to_string(i) + "]";
    const json& n = arr[i];
    if (!n.is_object()) return ck.Error(field, "must be an object");
    if (Status st = ck.Keys(n, field, {"phase", "priority", "paths", "packages"}); !st.ok()) return st;
    SignatureNeed need;
    auto phase = n.find("phase");
    if (phase == n.end() || !phase->is_string()) return ck.Error(field + ".phase", "missing or not a string");
    if (!ParseSignaturePhase(phase->get<std::string>(), &need.phase)) {
      return ck.Error(field + ".phase",
                      "unknown phase \"" + phase->get<std::string>() + "\" (boot | service-start | steady)");
    }
    auto prio = n.find("priority");
    if (prio == n.end() || !prio->is_string()) return ck.Error(field + ".priority", "missing or not a string");
    bool known = false;
    for (auto p : {SignaturePriority::kCritical, SignaturePriority::kEarly, SignaturePriority::kBackground}) {
      if (prio->get<std::string>() == SignaturePriorityName(p)) {
        need.priority = p;
        known = true;
      }
    }
    if (!known) {
      return ck.Error(field + ".priority",
                      "unknown priority \"" + prio->get<std::string>() + "\" (critical | early | background)");
    }
    if (Status st = ParseStrings(n, "paths", field, ck, &need.paths); !st.ok()) return st;
    if (Status st = ParseStrings(n, "packages", field, ck, &need.packages); !st.ok()) return st;
    if (need.paths.empty() && need.packages.empty()) return ck.Error(field, "names no paths and no packages");
    sig.needs.push_back(std::move(need));
  }
  return Status::Ok();
}

Result<Signature> Parse(const json& doc, Checker& ck, const std::string& file) {
  if (!doc.is_object()) return ck.Error("", "must be a JSON object");
  if (Status st = ck.Keys(doc, "", {"format", "version", "application", "description", "source", "detect",
                                    "always", "needs"});
      !st.ok()) {
    return st;
  }
  auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || format->get<std::string>() != kSignatureFormat) {
    return ck.Error("format", "must be \"affinity-signature\"");
  }
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_unsigned() || version->get<uint64_t>() != kSignatureVersion) {
    return ck.Error("version", "unsupported (this build reads version " + std::to_string(kSignatureVersion) + ")");
  }
  Signature sig;
  sig.file = file;
  auto app = doc.find("application");
  if (app == doc.end() || !app->is_string() || !ValidApplicationName(app->get<std::string>())) {
    return ck.Error("application", "missing or not a name ([a-z0-9][a-z0-9._+-]*, at most 64)");
  }
  sig.application = app->get<std::string>();
  if (Status st = ck.OptString(doc, "description", &sig.description); !st.ok()) return st;
  if (Status st = ck.OptString(doc, "source", &sig.source); !st.ok()) return st;
  if (auto always = doc.find("always"); always != doc.end()) {
    if (!always->is_boolean()) return ck.Error("always", "must be true or false");
    sig.always = always->get<bool>();
  }
  auto detect = doc.find("detect");
  if (sig.always && detect != doc.end()) return ck.Error("detect", "not allowed with \"always\": true");
  if (!sig.always) {
    if (detect == doc.end()) return ck.Error("detect", "missing (or \"always\": true)");
    if (Status st = ParseDetect(*detect, ck, sig); !st.ok()) return st;
  }
  auto needs = doc.find("needs");
  if (needs == doc.end()) return ck.Error("needs", "missing");
  if (Status st = ParseNeeds(*needs, ck, sig); !st.ok()) return st;
  return sig;
}

Result<std::string> ReadBounded(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return IoError(path.string() + ": " + ec.message());
  if (size > kMaxSignatureFileBytes) return InvalidArgument(path.string() + ": larger than 1 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError(path.string() + ": cannot open");
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) return IoError(path.string() + ": short read");
  return text;
}

}  // namespace

Result<Signature> ParseSignature(std::string_view json_text, const std::string& file) {
  Checker ck(file);
  if (json_text.size() > kMaxSignatureFileBytes) return ck.Error("", "larger than 1 MiB");
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    return ck.Error("", std::string("not JSON: ") + e.what());
  }
  try {
    return Parse(doc, ck, file);
  } catch (const json::exception& e) {  // a check above is missing: still no exception out of here
    return ck.Error("", std::string("unexpected JSON: ") + e.what());
  }
}

SignatureDb SignatureDb::Load(const std::vector<std::string>& dirs) {
  namespace fs = std::filesystem;
  SignatureDb db;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".json") files.push_back(it->path());
    }
    if (ec) {
      db.errors_.push_back(IoError(dir + ": " + ec.message()));
      continue;
    }
    std::sort(files.begin(), files.end());
    std::set<std::string> seen;  // applications of this directory
    for (const fs::path& path : files) {
      Result<std::string> text = ReadBounded(path);
      if (!text.ok()) {
        db.errors_.push_back(text.status());
        continue;
      }
      Result<Signature> sig = ParseSignature(*text, path.string());
      if (!sig.ok()) {
        db.errors_.push_back(sig.status());
        continue;
      }
      if (!seen.insert(sig->application).second) {
        db.errors_.push_back(InvalidArgument(path.string() + ": application: \"" + sig->application +
                                             "\" is already defined by another file of " + dir));
        continue;
      }
      db.Put(std::move(sig).value());
    }
  }
  return db;
}

void SignatureDb::Put(Signature signature) {
  auto it = std::lower_bound(signatures_.begin(), signatures_.end(), signature.application,
                             [](const Signature& s, const std::string& app) { return s.application < app; });
  if (it != signatures_.end() && it->application == signature.application) {
    *it = std::move(signature);
  } else {
    signatures_.insert(it, std::move(signature));
  }
}

const Signature* SignatureDb::Find(std::string_view application) const {
  auto it = std::lower_bound(signatures_.begin(), signatures_.end(), application,
                             [](const Signature& s, std::string_view app) { return s.application < app; });
  return it != signatures_.end() && it->application == application ? &*it : nullptr;
}

std::string ShippedSignatureDir() {
  struct stat st {};
  if (::stat(AFFINITY_INSTALLED_SIGNATURES, &st) == 0 && S_ISDIR(st.st_mode)) return AFFINITY_INSTALLED_SIGNATURES;
  return AFFINITY_SOURCE_SIGNATURES;
}

}  // namespace affinity::profile
