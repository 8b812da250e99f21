// libFuzzer target: the storage host's image listing as parsed by affinityfs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/names.h"
#include "fs/image_listing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto listing = affinity::fs::ParseImageListing("vm", in);
  if (listing.ok()) {
    for (const auto& image : *listing) {
      if (!affinity::ValidateName("image", image.name).ok()) __builtin_trap();  // never a path escape
    }
  }
  return 0;
}
