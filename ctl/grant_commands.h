// `affinityctl grant issue|revoke|inspect` (docs/grants.md):
//   issue   --vm VM --holder FPR|--holder-cert CERT --ops read,prefetch,write
//           [--image NAME]... [--ttl S] [--out FILE] [--json]     (admin)
//   revoke  GRANT_ID                                               (admin)
//   inspect TOKEN|--file FILE [--key grant.pub [--issuer NAME]] [--json]
//           decodes the claims; with --key also verifies the signature,
//           issuer and time window. Last line "signature: valid (...)",
//           "signature: REFUSED <code>: <reason>" (exit 1) or "signature:
//           NOT verified (no --key)". Input that is not a grant (or a file
//           longer than any grant) is exit 1 with one line on stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddGrantCommands(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
