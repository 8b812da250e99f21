// TlsContext: the storage host's server-side TLS configuration (OpenSSL via
// Boost.Asio), built once at start-up and shared by every connection.
//
// Policy: TLS 1.2 or newer only; mutual TLS is mandatory
// (verify_peer | verify_fail_if_no_peer_cert): a client must present a
// certificate that chains to --client-ca or --admin-ca, otherwise the handshake fails and
// no HTTP byte is exchanged. The CA's name is advertised to clients
// (CertificateRequest), renegotiation is off, and a session-id context is
// set so clients may resume sessions with their certificate.
//
// Thread safety: build once, then read-only; asio's ssl::context is safe to
// share between connections on any thread.
// Failure: kInvalidArgument naming the flag and file that could not be used
// (unreadable, not PEM, key not matching the certificate, empty CA file).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "common/status.h"

namespace affinity::storage {

struct TlsFiles {
  std::string cert_file;       // --tls-cert: server certificate chain, PEM
  std::string key_file;        // --tls-key: its private key, PEM
  std::string client_ca_file;  // --client-ca: CA(s) whose client certificates are accepted
  std::string admin_ca_file;   // --admin-ca: CA of admin (control-plane) certificates; also accepted
};

Result<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const TlsFiles& files);

}  // namespace affinity::storage
