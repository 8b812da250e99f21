#include "ctl/owner_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include "common/names.h"
#include "ctl/admin_client.h"

namespace affinity::ctl {
namespace {

struct OwnerOptions {
  AdminConnection connection;
  std::string vm, holder, holder_cert;
  bool json = false;
};

int PrintOwner(const Result<nlohmann::json>& reply, bool json) {
  if (!reply.ok()) return Fail(reply.status().message());
  if (json) {
    std::printf("%s\n", JsonDump(*reply).c_str());
    return 0;
  }
  const std::string owner = JsonText(*reply, "owner");
  const std::string open = JsonText(*reply, "open_migration");
  std::printf("vm              %s\nowner           %s\nepoch           %lld\nopen migration  %s\n",
              JsonText(*reply, "vm").c_str(), owner.empty() ? "(none: nobody may write)" : owner.c_str(),
              static_cast<long long>(JsonNumber(*reply, "epoch")), open.empty() ? "-" : open.c_str());
  return 0;
}

}  // namespace

void AddOwnerCommand(CLI::App& app, int& exit_code) {
  CLI::App* owner = app.add_subcommand("owner", "Show or set which host owns a VM's images (admin)");
  owner->require_subcommand(1);
  for (const char* name : {"show", "set"}) {
    auto o = std::make_shared<OwnerOptions>();
    const bool set = std::string(name) == "set";
    CLI::App* cmd = owner->add_subcommand(name, set ? "Set the owner (initial placement)" : "Show the owner");
    AddAdminConnectionOptions(cmd, o->connection);
    cmd->add_option("--vm", o->vm, "VM")->required();
    cmd->add_flag("--json", o->json, "Print the storage host's JSON reply");
    if (set) {
      cmd->add_option("--holder", o->holder, "Owner's key fingerprint");
      cmd->add_option("--holder-cert", o->holder_cert, "Owner's client certificate (instead of --holder)");
    }
    cmd->callback([o, set, &exit_code] {
      if (Status s = ValidateName("--vm", o->vm); !s.ok()) {
        exit_code = Fail(s.message());
        return;
      }
      if (!set) {
        exit_code = PrintOwner(CallStorage(o->connection, "GET", "/v1/vms/" + o->vm + "/owner"), o->json);
        return;
      }
      auto holder = HolderFrom(o->holder, o->holder_cert, "holder");
      if (!holder.ok()) {
        exit_code = Fail(holder.status().message());
        return;
      }
      exit_code = PrintOwner(CallStorage(o->connection, "PUT", "/v1/vms/" + o->vm + "/owner", {{"holder", *holder}}),
                             o->json);
    });
  }
}

}  // namespace affinity::ctl
