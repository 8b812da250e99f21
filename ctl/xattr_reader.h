// Reads the user.affinity.* extended attributes of a path (listxattr + getxattr).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace affinity::ctl {

using Attributes = std::vector<std::pair<std::string, std::string>>;  // name without the prefix, value

// kNotFound if the path does not exist; kInvalidArgument if it has no
// user.affinity.* attributes (not on an affinityfs mount).
Result<Attributes> ReadAffinityXattrs(const std::string& path);

}  // namespace affinity::ctl
