// libFuzzer target: the parsers of application signatures' outside input —
// a guest's /var/lib/dpkg/status (any guest can write it), a signature file
// (an operator's directory) and path globs. None may crash; a glob that
// validates must match itself as a literal path when it has no glob syntax.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "profile/dpkg_status.h"
#include "profile/path_glob.h"
#include "profile/signature_db.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace affinity::profile;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)ParseDpkgStatus(in);
  (void)ParseSignature(in, "fuzz.json");
  // First line: a pattern; second: a path.
  const size_t nl = in.find('\n');
  const std::string_view pattern = in.substr(0, nl);
  const std::string_view path = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  if (ValidateGlob(pattern).ok()) {
    (void)GlobMatch(pattern, path);
    if (!IsGlob(pattern) && !GlobMatch(pattern, pattern)) __builtin_trap();
  }
  return 0;
}
