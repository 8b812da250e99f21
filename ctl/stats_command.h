// `affinityctl stats PATH [--json] [--watch [--interval S]]`: the
// user.affinity.* statistics of an image file (that image) or of the mount
// root (totals), as an aligned table or one JSON object. Exit status 0, or 1
// with one line on stderr when PATH is missing or not on an affinityfs mount.
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

// Registers the subcommand on `app`; when it runs, its callback sets
// `exit_code` (which must outlive app.parse()).
void AddStatsCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
