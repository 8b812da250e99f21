// `affinityctl stats PATH [--json] [--watch [--interval S]]`
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

// Registers the subcommand; the callback runs it and sets `exit_code`.
void AddStatsCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
