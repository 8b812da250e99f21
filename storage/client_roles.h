// ClientRoles: tells an admin client from a data client after the mutual-TLS
// handshake, and fills in the peer's PeerIdentity.
//
// Two CAs, never the same one: --client-ca issues the certificates of hosts
// that hold data grants, --admin-ca the certificates of operators and
// orchestrators allowed to make control-plane calls (begin / commit / abort /
// issue / revoke / owner). Both are trusted for the TLS handshake; a peer is
// an admin when its certificate verifies against the admin CA alone (checked
// with the peer certificate, so it works for resumed TLS sessions too).
//
// Thread safety: Identify() from any thread (the store is read-only after Load).
// Failure: Load returns kInvalidArgument naming the file that holds no CA
// certificate, or that both flags name the same CA.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "storage/peer_identity.h"

typedef struct ssl_st SSL;
typedef struct x509_store_st X509_STORE;

namespace affinity::storage {

class ClientRoles {
 public:
  static Result<std::unique_ptr<ClientRoles>> Load(const std::string& admin_ca_file, const std::string& client_ca_file);
  ~ClientRoles();
  ClientRoles(const ClientRoles&) = delete;
  ClientRoles& operator=(const ClientRoles&) = delete;

  // After a successful handshake on `ssl`.
  PeerIdentity Identify(SSL* ssl, std::string address) const;

 private:
  explicit ClientRoles(X509_STORE* admin) : admin_(admin) {}
  X509_STORE* const admin_;
};

}  // namespace affinity::storage
