// ListenAddress: the --listen HOST:PORT flag of affinity-storaged, parsed.
//
// Accepts "127.0.0.1:8443", "0.0.0.0:0" (port 0: the kernel picks a free
// port, reported through --ready-file) and "[::1]:8443". HOST must be a
// numeric address; the server binds exactly what it is given.
//
// Thread safety: pure function.
// Failure: kInvalidArgument with a message that names the expected form
// ("HOST:PORT") or the bad port.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity::storage {

struct ListenAddress {
  std::string host;  // without brackets
  uint16_t port = 0;
};

Result<ListenAddress> ParseListenAddress(std::string_view text);

}  // namespace affinity::storage
