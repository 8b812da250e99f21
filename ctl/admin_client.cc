#include "ctl/admin_client.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "acl/holder_fingerprint.h"
#include "fetcher/https_client.h"

namespace affinity::ctl {

void AddAdminConnectionOptions(CLI::App* command, AdminConnection& c) {
  command->add_option("--storage", c.storage, "Storage host, https://HOST:PORT")->envname("AFFINITY_STORAGE");
  command->add_option("--ca", c.ca_file, "CA of the storage host's certificate (PEM)")->envname("AFFINITY_CA");
  command->add_option("--cert", c.cert_file, "Admin client certificate (PEM, from the storage host's --admin-ca)")
      ->envname("AFFINITY_CERT");
  command->add_option("--key", c.key_file, "Private key of --cert (PEM)")->envname("AFFINITY_KEY");
  command->add_option("--timeout", c.timeout_s, "Seconds a call may take, retries included")
      ->envname("AFFINITY_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
}

Result<std::string> CallStorageRaw(const AdminConnection& c, const std::string& method, const std::string& path,
                                   std::string body, const std::string& content_type) {
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
  if (!body.empty()) {
    request.body = std::move(body);
    request.headers.push_back("Content-Type: " + content_type);
  }
  request.deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000));
  // A control-plane change is sent once: retrying after a lost reply would
  // be refused (409) and hide that the first attempt did the change.
  const bool changes = method != "GET";
  request.idempotent = !changes;
  fetcher::FetchOutcome out = (*client)->Fetch(std::move(request));
  if (!out.status.ok()) {
    if (changes && out.failure.error != fetcher::FetchError::kClientError) {
      return Status(out.status.code(), out.status.message() +
                                           " (not retried: the storage host may or may not have made the change; "
                                           "check with owner show or migrate status)");
    }
    return out.status;
  }
  return std::string(out.response.body.begin(), out.response.body.end());
}

Result<nlohmann::json> CallStorage(const AdminConnection& c, const std::string& method, const std::string& path,
                                   const nlohmann::json& body) {
  auto raw = CallStorageRaw(c, method, path, body.is_null() ? std::string() : body.dump(), "application/json");
  if (!raw.ok()) return raw.status();
  nlohmann::json reply = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_object()) {
    return Corruption("the storage host's reply to " + method + " " + path + " is not a JSON object");
  }
  return reply;
}

std::string JsonText(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t JsonNumber(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  if (it == obj.end()) return 0;
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  }
  return it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string UnixTime(int64_t seconds) {
  if (seconds == 0) return "-";
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  char buf[32] = "?";
  if (::gmtime_r(&t, &tm) != nullptr) std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::to_string(seconds) + " (" + buf + ")";
}

std::string JsonDump(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
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
