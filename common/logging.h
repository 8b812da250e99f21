// Logging set-up shared by the daemons and the CLI (spdlog).
//
// `destination`: "" or "stderr" (journald picks stderr up under systemd),
// "syslog", or a file path (appended to). Levels: trace, debug, info, warn,
// error, off. Call once from main before any thread starts.
#pragma once

#include <string_view>

#include "common/status.h"

namespace affinity {

Status InitLogging(std::string_view program, std::string_view level, std::string_view destination = "");

}  // namespace affinity
