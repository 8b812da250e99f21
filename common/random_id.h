// RandomId: `prefix` + 24 hex digits of OpenSSL randomness (96 bits), for
// ids that must not be guessable or collide: grants ("g-"), migrations
// ("m-"), sessions ("s-").
//
// Failure: throws std::runtime_error if OpenSSL's generator fails (it does
// not on a seeded Linux system); a guessable id is never returned.
#pragma once

#include <string>
#include <string_view>

namespace affinity {

std::string RandomId(std::string_view prefix);

}  // namespace affinity
