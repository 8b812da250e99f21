#include "ctl/admin_client.h"

#include <chrono>
#include <cstdio>

#include "acl/holder_fingerprint.h"
#include "fetcher/https_client.h"

namespace affinity::ctl {

void AddAdminConnectionOptions(CLI::App* command, AdminConnection& c) {
  command->add_option("--storage", c.storage, "Storage host, https://HOST:PORT")->envname("AFFINITY_STORAGE");
  command->add_option("--ca", c.ca_file, "CA of the storage host's certificate (PEM)")->envname("AFFINITY_CA");
  command->add_option("--cert", c.cert_file, "Admin client certificate (PEM, from the storage host's --admin-ca)")
      ->envname("AFFINITY_CERT");
  command->add_option("--key", c.key_file, "Private key of --cert (PEM)")->envname("AFFINITY_KEY");
}

Result<nlohmann::json> CallStorage(const AdminConnection& c, const std::string& method, const std::string& path,
                                   const nlohmann::json& body) {
  for (const auto& [flag, value] : {std::pair<const char*, const std::string&>{"--storage", c.storage},
                                    {"--ca", c.ca_file},
                                    {"--cert", c.cert_file},
                                    {"--key", c.key_file}}) {
    if (value.empty()) return InvalidArgument(std::string(flag) + " is required (or its AFFINITY_* variable)");
  }
  if (c.storage.rfind("https://", 0) != 0) return InvalidArgument("--storage must be an https:// URL");
  fetcher::ClientConfig config;
  config.base_url = c.storage;
  while (!config.base_url.empty() && config.base_url.back() == '/') config.base_url.pop_back();
  config.ca_file = c.ca_file;
  config.cert_file = c.cert_file;
  config.key_file = c.key_file;
  config.max_connections = 1;
  config.reserved_demand_connections = 0;
  auto client = fetcher::HttpsClient::Create(config);
  if (!client.ok()) return client.status();
  fetcher::Request request;
  request.method = method;
  request.path = path;
  if (!body.is_null()) {
    request.body = body.dump();
    request.headers.push_back("Content-Type: application/json");
  }
  request.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  fetcher::FetchOutcome out = (*client)->Fetch(std::move(request));
  if (!out.status.ok()) return out.status;
  nlohmann::json reply =
      nlohmann::json::parse(out.response.body.begin(), out.response.body.end(), nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) return Corruption("the storage host's reply to " + method + " " + path + " is not JSON");
  return reply;
}

Result<std::string> HolderFrom(const std::string& fingerprint, const std::string& cert_file, const char* flag) {
  if (!fingerprint.empty() && !cert_file.empty()) {
    return InvalidArgument(std::string("give --") + flag + " or --" + flag + "-cert, not both");
  }
  if (!cert_file.empty()) return acl::HolderFingerprintOfFile(cert_file);
  if (!acl::IsFingerprint(fingerprint)) {
    return InvalidArgument(std::string("--") + flag + " must be a 64-hex-digit key fingerprint " +
                           "(affinityctl fingerprint CERT), or use --" + flag + "-cert CERT");
  }
  return fingerprint;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "affinityctl: %s\n", message.c_str());
  return 1;
}

}  // namespace affinity::ctl
