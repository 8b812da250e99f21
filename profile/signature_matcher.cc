#include "profile/signature_matcher.h"

#include <fnmatch.h>

#include <algorithm>
#include <optional>

#include "profile/dpkg_status.h"
#include "profile/file_map_index.h"
#include "profile/path_glob.h"

namespace affinity::profile {
namespace {

constexpr const char* kDpkgStatusPath = "/var/lib/dpkg/status";
// The evidence is one short sentence for `affinityctl profile show`.
constexpr size_t kMaxEvidence = 300;
// How many names one dpkg or path rule lists before "...".
constexpr size_t kMaxNamesPerRule = 3;

constexpr const char* kUnitDirs[] = {"/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"};
constexpr const char* kLinuxInits[] = {"/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd"};

// The dpkg database of one detection run, read on first use.
class DpkgCache {
 public:
  DpkgCache(const FileMapIndex& index, const GuestFileReader& read) : index_(index), read_(read) {}

  // nullptr if the guest has no dpkg status or it is unreadable (error()).
  const DpkgStatus* Get() {
    if (!loaded_) Load();
    return status_ ? &*status_ : nullptr;
  }
  // Empty until Get() tried and failed.
  const std::string& error() const { return error_; }

 private:
  void Load() {
    loaded_ = true;
    if (index_.Resolve(kDpkgStatusPath, true) == nullptr) return;  // not a dpkg system
    Result<std::string> text = read_ ? read_(kDpkgStatusPath, kMaxDpkgStatusBytes + 1)
                                     : Result<std::string>(Unavailable("no file reader"));
    if (!text.ok()) {
      error_ = "dpkg status unreadable: " + text.status().message();
      return;
    }
    Result<DpkgStatus> parsed = ParseDpkgStatus(*text);
    if (!parsed.ok()) {
      error_ = "dpkg status unreadable: " + parsed.status().message();
      return;
    }
    status_ = std::move(parsed).value();
  }

  const FileMapIndex& index_;
  const GuestFileReader& read_;
  bool loaded_ = false;
  std::optional<DpkgStatus> status_;
  std::string error_;
};

std::string ListNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxNamesPerRule; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > kMaxNamesPerRule) out += ", ...";
  return out;
}

std::optional<std::string> CheckDpkg(const std::string& pattern, DpkgCache& dpkg) {
  const DpkgStatus* status = dpkg.Get();
  if (status == nullptr) return std::nullopt;
  std::vector<std::string> hits;
  for (const auto& [name, pkg] : *status) {
    if (pkg.installed && ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) {
      hits.push_back(pkg.version.empty() ? name : name + " " + pkg.version);
    }
  }
  if (hits.empty()) return std::nullopt;
  return "dpkg: " + ListNames(hits) + " installed";
}

std::optional<std::string> CheckPath(const std::string& pattern, const FileMapIndex& index) {
  std::vector<const GuestFile*> files = index.Glob(pattern);
  if (files.empty()) return std::nullopt;
  if (!IsGlob(pattern)) return "path " + pattern + " present";
  std::vector<std::string> names;
  for (const GuestFile* f : files) names.push_back(f->path);
  return "path " + ListNames(names) + " present";
}

std::optional<std::string> CheckUnit(const std::string& unit, const FileMapIndex& index) {
  // Masked: a link to /dev/null in /etc overrides every other unit file.
  if (const GuestFile* f = index.Resolve("/etc/systemd/system/" + unit, false);
      f != nullptr && f->kind == GuestFileKind::kSymlink && f->link_target == "/dev/null") {
    return std::nullopt;
  }
  std::vector<std::string> wants;
  std::string name;
  for (const GuestFile* f : index.Glob("/etc/systemd/system/*.wants/" + unit)) {
    if (f->kind != GuestFileKind::kSymlink) continue;
    auto parts = SplitPath(f->path);
    wants.emplace_back(parts[parts.size() - 2]);
    name = std::string(parts.back());
  }
  if (!wants.empty()) return "unit " + name + " enabled (" + ListNames(wants) + ")";
  for (const char* dir : kUnitDirs) {
    auto files = index.Glob(std::string(dir) + "/" + unit);
    if (!files.empty()) {
      return "unit " + std::string(SplitPath(files[0]->path).back()) + " present (" + dir + "), not enabled";
    }
  }
  return std::nullopt;
}

std::optional<std::string> CheckLinux(const FileMapIndex& index) {
  for (const char* init : kLinuxInits) {
    if (index.Resolve(init, false) != nullptr) return std::string("linux: ") + init + " present";
  }
  auto kernels = index.Glob("/boot/vmlinuz*");
  if (!kernels.empty()) return "linux: " + kernels[0]->path + " present";
  return std::nullopt;
}

}  // namespace

std::vector<SignatureMatch> DetectApplications(const SignatureDb& db, const GuestFileMap& map,
                                               const GuestFileReader& read, std::vector<std::string>* notes) {
  const FileMapIndex index(map);
  DpkgCache dpkg(index, read);
  std::vector<SignatureMatch> out;
  for (const Signature& sig : db.signatures()) {
    std::vector<std::string> evidence;
    bool dpkg_rule = false;
    if (sig.always) {
      if (auto e = CheckLinux(index)) evidence.push_back(*e);
    }
    for (const DetectRule& rule : sig.detect) {
      std::optional<std::string> e;
      switch (rule.kind) {
        case DetectRule::Kind::kDpkg:
          dpkg_rule = true;
          e = CheckDpkg(rule.value, dpkg);
          break;
        case DetectRule::Kind::kPath: e = CheckPath(rule.value, index); break;
        case DetectRule::Kind::kUnit: e = CheckUnit(rule.value, index); break;
      }
      if (e && std::find(evidence.begin(), evidence.end(), *e) == evidence.end()) evidence.push_back(*e);
    }
    if (evidence.empty()) continue;
    if (dpkg_rule && !dpkg.error().empty()) evidence.push_back(dpkg.error());
    std::string sentence;
    for (const std::string& e : evidence) {
      if (!sentence.empty()) sentence += "; ";
      sentence += e;
    }
    if (sentence.size() > kMaxEvidence) sentence = sentence.substr(0, kMaxEvidence - 3) + "...";
    // Guest names and versions are bytes, not UTF-8; the evidence goes into
    // CBOR text strings and JSON output, so it is kept to printable ASCII.
    for (char& c : sentence) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    out.push_back({sig.application, std::move(sentence)});
  }
  if (notes != nullptr && !dpkg.error().empty()) notes->push_back(dpkg.error());
  return out;
}

}  // namespace affinity::profile
