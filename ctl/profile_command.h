// `affinityctl profile show|export|import|build` (docs/profile.md):
//   show    --vm VM (storage host, admin) or --file F: what the profile
//           predicts (sessions, classes, bytes, top blocks, signatures)
//   export  --vm VM -o FILE: the encoded profile the storage host serves now
//   import  --vm VM FILE: store FILE as VM's profile (served while VM has no history)
//   build   --vm VM --image NAME -o FILE TRACE.csv...: a profile from block
//           traces, offline, with the storage host's model; --live TRACE
//           --cut S adds the run being migrated, observed until S seconds
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddProfileCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
