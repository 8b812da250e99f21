#include "storage/listen_address.h"

#include <charconv>

namespace affinity::storage {

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("--listen must be HOST:PORT, e.g. 127.0.0.1:8443 (got " + quoted + ")");
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return InvalidArgument("--listen IPv6 host must be written [ADDR]:PORT (got " + quoted + ")");
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return InvalidArgument("--listen IPv6 host must be written [ADDR]:PORT (got " + quoted + ")");
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return InvalidArgument("--listen port must be a number in 0..65535 (got '" + std::string(port_text) + "')");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

}  // namespace affinity::storage
