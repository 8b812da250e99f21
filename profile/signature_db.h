// Application signatures: what an application on a guest reads, and when,
// written as versioned JSON data files, one application per file
// (docs/signatures.md has the format). Shipped in profile/signatures/,
// installed to share/affinityfs/signatures; operators add their own
// directories.
//
// ParseSignature validates one file strictly: unknown keys, a wrong format
// or version, an unknown phase or priority, a bad glob, a non-string path,
// too many patterns are errors naming the file and the field
// ("nginx.json: needs[1].phase: unknown phase \"bootup\""). SignatureDb::Load
// reads directories in order; a later directory's application replaces an
// earlier one of the same name (an operator's --signatures DIR overrides a
// shipped file). A bad file is rejected and reported; the others load.
//
// Thread safety: a loaded SignatureDb is immutable; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace affinity::profile {

inline constexpr std::string_view kSignatureFormat = "affinity-signature";
inline constexpr uint32_t kSignatureVersion = 1;
// Limits against a hostile or broken file: a real signature is a few KiB
// with tens of patterns.
inline constexpr size_t kMaxSignatureFileBytes = 1u << 20;
inline constexpr size_t kMaxSignaturePatterns = 4096;  // detect rules + paths + packages

enum class SignaturePhase : uint8_t { kBoot = 0, kServiceStart = 1, kSteady = 2 };
enum class SignaturePriority : uint8_t { kCritical = 0, kEarly = 1, kBackground = 2 };
const char* SignaturePhaseName(SignaturePhase p);
const char* SignaturePriorityName(SignaturePriority p);
// "boot" | "service-start" | "steady"; false if unknown.
bool ParseSignaturePhase(std::string_view name, SignaturePhase* out);

struct DetectRule {
  enum class Kind : uint8_t { kDpkg, kPath, kUnit };
  Kind kind = Kind::kPath;
  std::string value;  // a package name, a path glob, a unit name (fnmatch patterns allowed)
  bool operator==(const DetectRule&) const = default;
};

struct SignatureNeed {
  SignaturePhase phase = SignaturePhase::kSteady;
  SignaturePriority priority = SignaturePriority::kEarly;
  std::vector<std::string> paths;     // globs (profile/path_glob.h)
  std::vector<std::string> packages;  // dpkg package names (fnmatch patterns allowed)
  bool operator==(const SignatureNeed&) const = default;
};

struct Signature {
  std::string application;  // [a-z0-9][a-z0-9._+-]*, at most 64 characters
  std::string description;
  std::string source;       // how it was derived
  bool always = false;      // matches any Linux guest (instead of detect)
  std::vector<DetectRule> detect;
  std::vector<SignatureNeed> needs;
  std::string file;         // where it was loaded from
  bool operator==(const Signature&) const = default;
};

// `file` only names the origin in errors and in Signature::file.
Result<Signature> ParseSignature(std::string_view json_text, const std::string& file);

// The shipped signature database: the installed one
// (PREFIX/share/affinityfs/signatures) or, in a build tree that is not
// installed, the source tree's profile/signatures.
std::string ShippedSignatureDir();

class SignatureDb {
 public:
  SignatureDb() = default;

  // Every "*.json" of each directory (in name order), directories in order.
  // A missing directory, an unreadable or invalid file, two files of one
  // application in the same directory: reported in errors(), skipped.
  static SignatureDb Load(const std::vector<std::string>& dirs);

  // Adds or replaces (by application) one signature; for tests and callers
  // that build signatures in memory.
  void Put(Signature signature);

  // By application name; nullptr if none.
  const Signature* Find(std::string_view application) const;
  // Sorted by application name.
  const std::vector<Signature>& signatures() const { return signatures_; }
  // What Load rejected, each message naming the file (and field).
  const std::vector<Status>& errors() const { return errors_; }

 private:
  std::vector<Signature> signatures_;
  std::vector<Status> errors_;
};

}  // namespace affinity::profile
