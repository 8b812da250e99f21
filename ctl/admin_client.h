// AdminClient: affinityctl's calls to the storage host's control plane
// (docs/protocol.md, "Control plane"), made with the operator's admin
// client certificate through the project's HTTPS client (fetcher/).
//
// Connection options, on every subcommand that talks to the storage host,
// each with an environment default: --storage URL (AFFINITY_STORAGE),
// --ca FILE (AFFINITY_CA), --cert FILE (AFFINITY_CERT), --key FILE
// (AFFINITY_KEY).
//
// Failure: a Status whose message is what the user should read:
// "HTTP 409 conflict: migration m-... is aborted; it cannot be committed",
// or the connection/TLS error; never an exception.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace affinity::ctl {

struct AdminConnection {
  std::string storage;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

void AddAdminConnectionOptions(CLI::App* command, AdminConnection& connection);

// METHOD path with an optional JSON body; the reply's JSON document.
Result<nlohmann::json> CallStorage(const AdminConnection& connection, const std::string& method,
                                   const std::string& path, const nlohmann::json& body = nullptr);

// The holder fingerprint given as --holder FPR or --holder-cert CERT (exactly one).
Result<std::string> HolderFrom(const std::string& fingerprint, const std::string& cert_file, const char* flag);

// Prints "affinityctl: <message>" to stderr and returns 1.
int Fail(const std::string& message);

}  // namespace affinity::ctl
