// AdminClient: affinityctl's calls to the storage host's control plane
// (docs/protocol.md, "Control plane"), made with the operator's admin
// client certificate through the project's HTTPS client (fetcher/).
//
// Connection options, on every subcommand that talks to the storage host,
// each with an environment default: --storage URL (AFFINITY_STORAGE),
// --ca FILE (AFFINITY_CA), --cert FILE (AFFINITY_CERT), --key FILE
// (AFFINITY_KEY); --timeout SECONDS (AFFINITY_TIMEOUT, 15) bounds each call,
// retries of an unreachable storage host included.
//
// Failure: a Status whose message is what the user should read:
// "HTTP 409 conflict: migration m-... is aborted; it cannot be committed",
// or the connection/TLS error; never an exception. A successful reply that
// is not a JSON object is a failure too, so callers may index it; the field
// readers below never throw on a missing or mistyped member.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace affinity::ctl {

struct AdminConnection {
  std::string storage;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  double timeout_s = 15;  // --timeout: the whole call, retries included
};

void AddAdminConnectionOptions(CLI::App* command, AdminConnection& connection);

// METHOD path with an optional JSON body; the reply's JSON object.
Result<nlohmann::json> CallStorage(const AdminConnection& connection, const std::string& method,
                                   const std::string& path, const nlohmann::json& body = nullptr);

// METHOD path with a raw body (sent with `content_type` when not empty); the reply's bytes.
Result<std::string> CallStorageRaw(const AdminConnection& connection, const std::string& method,
                                   const std::string& path, std::string body = {},
                                   const std::string& content_type = "application/octet-stream");

// obj[key] if obj is an object whose `key` is a string (number), else "" (0).
std::string JsonText(const nlohmann::json& obj, const char* key);
int64_t JsonNumber(const nlohmann::json& obj, const char* key);
// "1700000000 (2023-11-14T22:13:20Z)"; "-" for 0.
std::string UnixTime(int64_t seconds);
// Indented JSON; bytes that are not UTF-8 are replaced rather than thrown on.
std::string JsonDump(const nlohmann::json& j);

// The holder fingerprint given as --holder FPR or --holder-cert CERT (exactly one).
Result<std::string> HolderFrom(const std::string& fingerprint, const std::string& cert_file, const char* flag);

// Prints "affinityctl: <message>" to stderr and returns 1.
int Fail(const std::string& message);

}  // namespace affinity::ctl
