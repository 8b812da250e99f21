// Logging set-up shared by the daemons and the CLI (spdlog).
//
// Log lines go to stderr (journald picks them up under systemd). Levels:
// trace, debug, info, warn, error. Call once from main before any thread starts.
#pragma once

#include <string_view>

#include "common/status.h"

namespace affinity {

Status InitLogging(std::string_view program, std::string_view level);

}  // namespace affinity
