// libFuzzer target: the access batch decoder, which reads what any host with
// a grant can POST to the storage host's profiler. A batch it accepts must
// encode and decode back to itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "profile/access_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto batch = affinity::profile::DecodeAccessBatch(in);
  if (batch.ok()) {
    auto back = affinity::profile::DecodeAccessBatch(affinity::profile::EncodeAccessBatch(*batch));
    if (!back.ok() || !(*back == *batch)) __builtin_trap();
  }
  return 0;
}
