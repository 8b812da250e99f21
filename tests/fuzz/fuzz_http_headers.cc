// libFuzzer target: the header parsers that read what a peer sends us
// (Range on the storage host; Content-Range and Content-Digest in the fetcher).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/byte_range.h"
#include "common/digest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  uint64_t object_size = size == 0 ? 0 : (uint64_t{data[0]} << 20) + size;
  auto range = affinity::ParseRangeHeader(in, object_size);
  if (range.ok()) {
    // A parsed range is always satisfiable and inside the object.
    if (range->length == 0 || range->end() > object_size) __builtin_trap();
    auto back = affinity::ParseContentRange(affinity::FormatContentRange(*range, object_size));
    if (!back.ok() || !(*back == *range)) __builtin_trap();
  }
  (void)affinity::ParseContentRange(in);
  auto digest = affinity::ParseContentDigest(in);
  if (digest.ok() && affinity::ParseContentDigest(affinity::ContentDigestValue(*digest)).value() != *digest) {
    __builtin_trap();
  }
  return 0;
}
