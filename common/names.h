// Validation of VM and image names that arrive from outside (URLs, CLI).
//
// A name is one path component: 1..255 bytes of [A-Za-z0-9._-], not "." or
// "..", not starting with '.'. Everything that turns a name into a path goes
// through here first, so no caller can be talked into leaving its root.
#pragma once

#include <string_view>

#include "common/status.h"

namespace affinity {

// kInvalidArgument naming the rule broken, e.g. "vm name contains '/'".
Status ValidateName(std::string_view kind, std::string_view name);

// An identifier made here and echoed back by clients (grant, migration and
// issuer ids): 1..128 bytes of [A-Za-z0-9._:-], not starting with '.', so it
// is also safe as one URL path segment. kInvalidArgument naming `kind`.
inline constexpr size_t kMaxIdLength = 128;
Status ValidateId(std::string_view kind, std::string_view id);

}  // namespace affinity
