// affinityctl: the operator and orchestration CLI of affinityfs.
//
// One file per subcommand (stats, keygen/fingerprint, grant, owner,
// migrate, profile, inspect): each exposes `AddXxxCommand(app, exit_code)`, registers its
// options and sets the exit code from its callback. main() only wires them.
#include <CLI/CLI.hpp>

#include "ctl/grant_commands.h"
#include "ctl/inspect_command.h"
#include "ctl/key_commands.h"
#include "ctl/migration_command.h"
#include "ctl/owner_command.h"
#include "ctl/profile_command.h"
#include "ctl/stats_command.h"

int main(int argc, char** argv) {
  CLI::App app{"affinityctl: control and inspect affinityfs"};
  app.set_version_flag("--version", "affinityctl 0.1.0");
  app.require_subcommand(1);
  int exit_code = 0;
  affinity::ctl::AddStatsCommand(app, exit_code);
  affinity::ctl::AddKeyCommands(app, exit_code);
  affinity::ctl::AddGrantCommands(app, exit_code);
  affinity::ctl::AddOwnerCommand(app, exit_code);
  affinity::ctl::AddProfileCommand(app, exit_code);
  affinity::ctl::AddMigrationCommand(app, exit_code);
  affinity::ctl::AddInspectCommand(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
