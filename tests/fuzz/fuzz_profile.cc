// libFuzzer target: the profile decoder, which reads profiles from the
// storage host and from operators' files (affinityctl profile import,
// affinityfs --profile). Input starting with 'E' is decoded as an envelope
// as it is; anything else is sealed first (zstd + the right SHA-256), so the
// fuzzer reaches the document parser behind the digest. A profile it accepts
// must encode and decode again.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "profile/profile_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto profile = !in.empty() && in[0] == 'E' ? affinity::profile::DecodeProfile(in.substr(1))
                                             : affinity::profile::DecodeProfile(affinity::profile::SealProfileDocument(in));
  if (profile.ok()) {
    auto back = affinity::profile::DecodeProfile(affinity::profile::EncodeProfile(*profile));
    if (!back.ok()) __builtin_trap();
  }
  return 0;
}
