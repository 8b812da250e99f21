// `affinityctl grant issue|revoke|inspect` (docs/grants.md):
//   issue   --vm VM --holder FPR|--holder-cert CERT --ops read,prefetch,write
//           [--image NAME]... [--ttl S] [--out FILE] [--json]     (admin)
//   revoke  GRANT_ID                                               (admin)
//   inspect TOKEN|--file FILE [--key grant.pub [--issuer NAME]] [--json]
//           decodes the claims; with --key also verifies the signature,
//           issuer and time window (exit 1 with the refusal if it fails).
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddGrantCommands(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
