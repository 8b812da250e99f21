// Request paths: the raw request-target of an HTTP request turned into
// decoded path segments, before any of them is used as a name.
//
// "/v1/vms/vm%2D42/images/root.raw?x=1" -> {"v1","vms","vm-42","images","root.raw"}.
// The query is dropped, each segment is percent-decoded on its own, and a
// decoded "/" stays inside its segment: "..%2f..%2fetc" is ONE segment, which
// name validation (common/names.h) then refuses. Decoding always comes first
// and validation second, so "%2e%2e" is refused exactly like "..".
//
// Thread safety: pure functions.
// Failure: kInvalidArgument for a target that is not origin-form ("/..."), a
// truncated or non-hex %-escape, or an escaped NUL.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace affinity::storage {

// A trailing "/" is ignored ("/v1/vms/" is {"v1","vms"}); empty segments in
// the middle are kept as "" so that "//etc" cannot collapse into a name.
Result<std::vector<std::string>> DecodePathSegments(std::string_view target);

}  // namespace affinity::storage
