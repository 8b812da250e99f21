#include "storage/client_roles.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdio>
#include <vector>

#include "acl/holder_fingerprint.h"

namespace affinity::storage {
namespace {

// Every certificate in a PEM file (empty if none or unreadable).
std::vector<X509*> ReadCertificates(const std::string& path) {
  std::vector<X509*> certs;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return certs;
  while (X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr)) certs.push_back(c);
  std::fclose(f);
  ERR_clear_error();  // the read that ended the loop
  return certs;
}

void FreeAll(std::vector<X509*>& certs) {
  for (X509* c : certs) X509_free(c);
  certs.clear();
}

}  // namespace

Result<std::unique_ptr<ClientRoles>> ClientRoles::Load(const std::string& admin_ca_file,
                                                       const std::string& client_ca_file) {
  std::vector<X509*> admin = ReadCertificates(admin_ca_file);
  if (admin.empty()) return InvalidArgument("--admin-ca '" + admin_ca_file + "' holds no PEM CA certificate");
  std::vector<X509*> clients = ReadCertificates(client_ca_file);
  for (X509* a : admin) {
    for (X509* c : clients) {
      if (X509_cmp(a, c) == 0) {
        FreeAll(admin);
        FreeAll(clients);
        return InvalidArgument("--admin-ca and --client-ca name the same CA; every data host would be an admin. "
                               "Use a separate CA for admin certificates");
      }
    }
  }
  FreeAll(clients);
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) {
    FreeAll(admin);
    return Internal("out of memory");
  }
  for (X509* a : admin) X509_STORE_add_cert(store, a);  // takes its own reference
  FreeAll(admin);
  return std::unique_ptr<ClientRoles>(new ClientRoles(store));
}

ClientRoles::~ClientRoles() { X509_STORE_free(admin_); }

PeerIdentity ClientRoles::Identify(SSL* ssl, std::string address) const {
  PeerIdentity id;
  id.address = std::move(address);
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return id;
  id.fingerprint = acl::HolderFingerprint(cert);
  std::array<char, 256> subject{};
  X509_NAME_oneline(X509_get_subject_name(cert), subject.data(), static_cast<int>(subject.size()));
  id.subject = subject.data();
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // the intermediates the peer sent, if any
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  if (ctx != nullptr && X509_STORE_CTX_init(ctx, admin_, cert, chain) == 1) {
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    id.admin = X509_verify_cert(ctx) == 1;
  }
  X509_STORE_CTX_free(ctx);
  ERR_clear_error();
  return id;
}

}  // namespace affinity::storage
