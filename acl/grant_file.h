// ReadGrantFile: the grant held in a file (affinityfs --grant, affinityctl
// grant inspect --file), without surrounding blanks or line ends. Reads at
// most a little more than the longest grant, so a hostile path such as
// /dev/zero ends in an error, not in memory exhaustion. Not checked beyond
// that: decode or verify the result (grant_token.h).
//
// Failure: ErrnoStatus naming the file; kInvalidArgument when it is empty or
// longer than any grant.
#pragma once

#include <string>

#include "common/status.h"

namespace affinity::acl {

Result<std::string> ReadGrantFile(const std::string& path);

}  // namespace affinity::acl
