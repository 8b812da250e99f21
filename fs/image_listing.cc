#include "fs/image_listing.h"

#include <nlohmann/json.hpp>

#include "common/names.h"

namespace affinity::fs {

Result<std::vector<RemoteImage>> ParseImageListing(const std::string& vm, std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Corruption("image listing of " + vm + " is not a JSON object");
  auto images = doc.find("images");
  if (images == doc.end() || !images->is_array()) return Corruption("image listing of " + vm + " has no images array");
  std::vector<RemoteImage> out;
  for (const auto& item : *images) {
    if (!item.is_object() || !item.contains("name") || !item["name"].is_string() || !item.contains("size") ||
        !item["size"].is_number_unsigned() || !item.contains("generation") ||
        !item["generation"].is_number_unsigned()) {
      return Corruption("image listing of " + vm + " has a malformed entry: " + item.dump());
    }
    RemoteImage image{item["name"].get<std::string>(), item["size"].get<uint64_t>(),
                      item["generation"].get<uint64_t>()};
    Status s = ValidateName("image", image.name);
    if (!s.ok()) return Corruption("image listing of " + vm + ": " + s.message());
    out.push_back(std::move(image));
  }
  return out;
}

Result<std::vector<RemoteImage>> FetchImageListing(fetcher::HttpsClient& client, const std::string& vm,
                                                   std::chrono::steady_clock::time_point deadline) {
  fetcher::Request req;
  req.path = "/v1/vms/" + vm + "/images";
  req.priority = fetcher::Priority::kDemand;
  req.deadline = deadline;
  fetcher::FetchOutcome outcome = client.Fetch(std::move(req));
  if (!outcome.status.ok()) return outcome.status.WithContext("list images of VM " + vm);
  const auto& body = outcome.response.body;
  return ParseImageListing(vm, std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
}

}  // namespace affinity::fs
