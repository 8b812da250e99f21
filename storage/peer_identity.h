// PeerIdentity: who is at the other end of a TLS connection, as the storage
// host established it during the mutual-TLS handshake.
//
// Thread safety: a plain value, owned by one connection.
#pragma once

#include <string>

namespace affinity::storage {

struct PeerIdentity {
  std::string address;      // "127.0.0.1:53422", for log lines
  std::string fingerprint;  // acl::HolderFingerprint of the client certificate's key
  std::string subject;      // the certificate's subject, for log lines
  bool admin = false;       // the certificate chains to --admin-ca
};

}  // namespace affinity::storage
