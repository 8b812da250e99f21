// Path globs of application signatures (docs/signatures.md, "Paths").
//
// A pattern is an absolute path whose components may use fnmatch(3) syntax
// (`*`, `?`, `[...]`, matched within one component: FNM_PATHNAME), and whose
// component `**` alone matches any number of components, zero included:
// "/etc/nginx/**" matches "/etc/nginx", "/etc/nginx/nginx.conf" and
// "/etc/nginx/sites-enabled/default". Backslash escapes are not supported
// (no guest path a signature names needs them), so a pattern is refused.
//
// Matching splits both sides into components and runs a small dynamic
// program over (pattern component, path component): O(components²).
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace affinity::profile {

// Longest pattern accepted (PATH_MAX).
inline constexpr size_t kMaxGlobLength = 4096;

// True if `s` uses any glob syntax (`*`, `?`, `[`).
bool IsGlob(std::string_view s);

// Ok, or kInvalidArgument saying what is wrong: not absolute, an empty, "."
// or ".." component, `**` inside a component, an unclosed `[`, a backslash,
// a control character, too long.
Status ValidateGlob(std::string_view pattern);

// REQUIRES: ValidateGlob(pattern).ok(); `path` absolute and normalized.
bool GlobMatch(std::string_view pattern, std::string_view path);

// "/usr/lib/x" -> {"usr", "lib", "x"}; empty components are dropped.
std::vector<std::string_view> SplitPath(std::string_view path);

}  // namespace affinity::profile
