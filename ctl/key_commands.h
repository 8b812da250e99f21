// `affinityctl keygen --out DIR`: a new Ed25519 grant-signing key pair,
//   DIR/grant.key (0600, for the storage host's --grant-key) and
//   DIR/grant.pub (for `grant inspect --key`); refuses to overwrite.
// `affinityctl fingerprint CERT`: the holder fingerprint of a host's
//   client certificate (what grants and migrations name).
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddKeyCommands(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
