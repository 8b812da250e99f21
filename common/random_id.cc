#include "common/random_id.h"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "common/digest.h"

namespace affinity {

std::string RandomId(std::string_view prefix) {
  std::array<uint8_t, 12> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed: cannot make an id");
  }
  return std::string(prefix) + ToHex(random);
}

}  // namespace affinity
