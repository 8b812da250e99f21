// `affinityctl migrate begin|commit|abort|status` (admin; docs/grants.md):
//   begin  --vm VM --to FPR|--to-cert CERT [--image NAME]... [--ttl S]
//          [--grant-ttl S] [--grant-out FILE] [--json]
//          prints the migration id and deadline; the destination's grant
//          goes to --grant-out (mode 0600) or is printed.
//   commit ID [--mount DIR]   prints the stale ranges; with --mount, sets
//   abort  ID [--mount DIR]   user.affinity.control=refresh on the
//                             destination's mount so it applies the change
//                             before this command returns (exit 2 if that
//                             fails: the storage host's change stands).
//   status ID [--json]
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddMigrationCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
