// Fetches and parses a VM's image listing (GET /v1/vms/{vm}/images).
//
// A listing that is not the documented JSON shape, or names an image with an
// invalid name, is kCorruption: we never build a namespace from it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "fetcher/https_client.h"
#include "fs/vm_cache.h"

namespace affinity::fs {

Result<std::vector<RemoteImage>> ParseImageListing(const std::string& vm, std::string_view json);

Result<std::vector<RemoteImage>> FetchImageListing(fetcher::HttpsClient& client, const std::string& vm,
                                                   std::chrono::steady_clock::time_point deadline);

}  // namespace affinity::fs
