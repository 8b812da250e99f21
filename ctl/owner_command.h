// `affinityctl owner show|set --vm VM [--holder FPR|--holder-cert CERT]`
// (admin): which host owns a VM's images (may write them) and the VM's
// ownership epoch; `set` is the initial placement, refused while a
// migration of the VM is open (docs/grants.md, "Ownership and epochs").
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddOwnerCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
