#include "ctl/key_commands.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "acl/holder_fingerprint.h"
#include "acl/signing_key.h"
#include "ctl/admin_client.h"

namespace affinity::ctl {

void AddKeyCommands(CLI::App& app, int& exit_code) {
  auto out = std::make_shared<std::string>();
  CLI::App* keygen = app.add_subcommand("keygen", "Make an Ed25519 grant-signing key pair (grant.key, grant.pub)");
  keygen->add_option("--out", *out, "Directory for grant.key and grant.pub (created 0700 if missing)")->required();
  keygen->callback([out, &exit_code] {
    if (::mkdir(out->c_str(), 0700) != 0 && errno != EEXIST) {
      exit_code = Fail("cannot create " + *out + ": " + std::strerror(errno));
      return;
    }
    auto key = acl::SigningKey::Generate();
    if (!key.ok()) {
      exit_code = Fail(key.status().message());
      return;
    }
    Status s = key->SavePem(*out + "/grant.key", *out + "/grant.pub");
    if (!s.ok()) {
      exit_code = Fail(s.message() + " (a key is never overwritten)");
      return;
    }
    std::printf("wrote %s/grant.key (private, 0600) and %s/grant.pub; key id %s\n", out->c_str(), out->c_str(),
                key->key_id().c_str());
  });

  auto cert = std::make_shared<std::string>();
  CLI::App* fp = app.add_subcommand("fingerprint", "Print the holder fingerprint of a client certificate");
  fp->add_option("CERT", *cert, "Client certificate (PEM)")->required();
  fp->callback([cert, &exit_code] {
    auto f = acl::HolderFingerprintOfFile(*cert);
    if (!f.ok()) {
      exit_code = Fail(f.status().message());
      return;
    }
    std::printf("%s\n", f->c_str());
  });
}

}  // namespace affinity::ctl
