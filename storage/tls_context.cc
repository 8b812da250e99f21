#include "storage/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <exception>

namespace affinity::storage {
namespace {

namespace ssl = boost::asio::ssl;

// Runs `fn`, turning an asio exception into kInvalidArgument about `flag` `path`.
template <typename Fn>
Status Load(const char* flag, const std::string& path, Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return InvalidArgument(std::string(flag) + " '" + path + "': " + e.what());
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ssl::context>> MakeServerTlsContext(const TlsFiles& files) {
  std::unique_ptr<ssl::context> ctx;
  try {
    ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  } catch (const std::exception& e) {
    return Internal(std::string("TLS context: ") + e.what());
  }
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return Internal("TLS context: cannot require TLS 1.2 or newer");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);

  Status s = Load("--tls-cert", files.cert_file, [&] { ctx->use_certificate_chain_file(files.cert_file); });
  if (s.ok()) {
    s = Load("--tls-key", files.key_file, [&] { ctx->use_private_key_file(files.key_file, ssl::context::pem); });
  }
  if (s.ok()) s = Load("--client-ca", files.client_ca_file, [&] { ctx->load_verify_file(files.client_ca_file); });
  if (s.ok() && !files.admin_ca_file.empty()) {
    s = Load("--admin-ca", files.admin_ca_file, [&] { ctx->load_verify_file(files.admin_ca_file); });
  }
  if (!s.ok()) return s;
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return InvalidArgument("--tls-key '" + files.key_file + "' does not match --tls-cert '" + files.cert_file + "'");
  }
  // Advertise the accepted CA(s) so a client with several certificates picks the right one.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca_file.c_str());
  if (names == nullptr || sk_X509_NAME_num(names) == 0) {
    if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
    ERR_clear_error();
    return InvalidArgument("--client-ca '" + files.client_ca_file + "' holds no CA certificate");
  }
  if (!files.admin_ca_file.empty()) {
    if (SSL_add_file_cert_subjects_to_stack(names, files.admin_ca_file.c_str()) != 1) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      ERR_clear_error();
      return InvalidArgument("--admin-ca '" + files.admin_ca_file + "' holds no CA certificate");
    }
  }
  SSL_CTX_set_client_CA_list(native, names);  // takes ownership

  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  static const unsigned char kSessionIdContext[] = "affinity-storaged";
  SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof kSessionIdContext - 1);
  return ctx;
}

}  // namespace affinity::storage
