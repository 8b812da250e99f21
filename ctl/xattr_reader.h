// Reads the user.affinity.* extended attributes of a path: listxattr for the
// names, getxattr for each value. No shelling out to getfattr.
//
// The daemon computes the values when they are read, so a value can change
// size between the size query and the read, and the list can change while it
// is walked: both are retried or skipped, never reported as errors.
//
// Thread safety: stateless; safe from any thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace affinity::ctl {

// The prefix every affinityfs statistic carries.
inline constexpr std::string_view kAffinityXattrPrefix = "user.affinity.";

// (name without the prefix, value), in the order the filesystem lists them.
using Attributes = std::vector<std::pair<std::string, std::string>>;

// Fails with
//   kNotFound         the path does not exist;
//   kInvalidArgument  it has no user.affinity.* attributes, or its filesystem
//                     has no extended attributes: not on an affinityfs mount;
//   other codes       listxattr/getxattr failed (permission, I/O).
Result<Attributes> ReadAffinityXattrs(const std::string& path);

}  // namespace affinity::ctl
