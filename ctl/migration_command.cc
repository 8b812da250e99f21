#include "ctl/migration_command.h"

#include <sys/statfs.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "ctl/admin_client.h"

namespace affinity::ctl {
namespace {

struct BeginOptions {
  AdminConnection connection;
  std::string vm, to, to_cert, grant_out;
  std::vector<std::string> images;
  int64_t ttl = 0, grant_ttl = 0;
  bool json = false;
};

struct StepOptions {
  AdminConnection connection;
  std::string id, mount;
  bool json = false;
};

void PrintMigration(const nlohmann::json& m) {
  auto text = [&](const char* k) { return m.contains(k) && m[k].is_string() ? m[k].get<std::string>() : std::string(); };
  auto number = [&](const char* k) { return m.contains(k) && m[k].is_number() ? m[k].get<int64_t>() : int64_t{0}; };
  std::printf("migration    %s\nvm           %s\nstate        %s\nsource       %s\ndestination  %s\n",
              text("id").c_str(), text("vm").c_str(), text("state").c_str(),
              text("source").empty() ? "(no owner)" : text("source").c_str(), text("destination").c_str());
  std::printf("deadline     %lld\nserved       %lld blocks of %lld bytes\n", static_cast<long long>(number("deadline")),
              static_cast<long long>(number("served_blocks")), static_cast<long long>(number("served_block_size")));
}

void PrintStale(const nlohmann::json& reply) {
  if (!reply.contains("stale") || !reply["stale"].is_array()) return;
  std::printf("stale        %zu ranges written by the source after the destination fetched them\n",
              reply["stale"].size());
  for (const auto& r : reply["stale"]) {
    std::printf("  %s %llu+%llu\n", r.value("image", "?").c_str(),
                static_cast<unsigned long long>(r.value("offset", uint64_t{0})),
                static_cast<unsigned long long>(r.value("length", uint64_t{0})));
  }
}

int RunBegin(const BeginOptions& o) {
  auto to = HolderFrom(o.to, o.to_cert, "to");
  if (!to.ok()) return Fail(to.status().message());
  nlohmann::json body = {{"vm", o.vm}, {"to", *to}};
  if (!o.images.empty()) body["images"] = o.images;
  if (o.ttl > 0) body["ttl"] = o.ttl;
  if (o.grant_ttl > 0) body["grant_ttl"] = o.grant_ttl;
  auto reply = CallStorage(o.connection, "POST", "/v1/migrations", body);
  if (!reply.ok()) return Fail(reply.status().message());
  if (!reply->contains("grant") || !(*reply)["grant"].is_string()) return Fail("the storage host sent no grant");
  const std::string grant = (*reply)["grant"].get<std::string>();
  if (!o.grant_out.empty()) {
    Status s = WriteFileAtomically(o.grant_out, grant + "\n", 0600);
    if (!s.ok()) return Fail(s.message() + " (the migration was begun; abort it or write the grant again)");
  }
  if (o.json) {
    std::printf("%s\n", reply->dump(2).c_str());
    return 0;
  }
  PrintMigration((*reply)["migration"]);
  if (o.grant_out.empty()) {
    std::printf("grant        %s\n", grant.c_str());
  } else {
    std::printf("grant        written to %s (read, prefetch; give it to affinityfs --grant)\n", o.grant_out.c_str());
  }
  return 0;
}

int RunStep(const StepOptions& o, const std::string& step) {
  const bool status = step == "status";
  auto reply = CallStorage(o.connection, status ? "GET" : "POST",
                           "/v1/migrations/" + o.id + (status ? std::string() : "/" + step));
  if (!reply.ok()) return Fail(reply.status().message());
  if (o.json) {
    std::printf("%s\n", reply->dump(2).c_str());
  } else {
    if (reply->contains("migration")) PrintMigration((*reply)["migration"]);
    PrintStale(*reply);
  }
  if (o.mount.empty()) return 0;
  static const char kRefresh[] = "refresh";
  // Only an affinityfs mount: a plain directory would take the attribute silently.
  struct statfs fs {};
  char vm[256];
  constexpr long kFuseSuperMagic = 0x65735546;
  if (::statfs(o.mount.c_str(), &fs) != 0 || fs.f_type != kFuseSuperMagic ||
      ::getxattr(o.mount.c_str(), "user.affinity.vm", vm, sizeof vm) < 0) {
    std::fprintf(stderr,
                 "affinityctl: the storage host has %s migration %s, but the destination mount did not apply it: "
                 "%s is not an affinityfs mount\n",
                 step == "commit" ? "committed" : "aborted", o.id.c_str(), o.mount.c_str());
    return 2;
  }
  if (::setxattr(o.mount.c_str(), "user.affinity.control", kRefresh, sizeof kRefresh - 1, 0) != 0) {
    std::fprintf(stderr,
                 "affinityctl: the storage host has %s migration %s, but the destination mount %s did not apply it: "
                 "setxattr user.affinity.control: %s\n",
                 step == "commit" ? "committed" : "aborted", o.id.c_str(), o.mount.c_str(), std::strerror(errno));
    return 2;
  }
  if (!o.json) std::printf("mount        %s applied the %s\n", o.mount.c_str(), step.c_str());
  return 0;
}

}  // namespace

void AddMigrationCommand(CLI::App& app, int& exit_code) {
  CLI::App* migrate = app.add_subcommand("migrate", "The migration handshake: begin, commit, abort, status (admin)");
  migrate->require_subcommand(1);

  auto begin = std::make_shared<BeginOptions>();
  CLI::App* b = migrate->add_subcommand("begin", "Begin migrating a VM to a destination host");
  AddAdminConnectionOptions(b, begin->connection);
  b->add_option("--vm", begin->vm, "VM")->required();
  b->add_option("--to", begin->to, "Destination's key fingerprint");
  b->add_option("--to-cert", begin->to_cert, "Destination's client certificate (instead of --to)");
  b->add_option("--image", begin->images, "An image in scope (repeatable; default: every image)");
  b->add_option("--ttl", begin->ttl, "Seconds before an uncommitted migration expires (default 600)");
  b->add_option("--grant-ttl", begin->grant_ttl, "Lifetime of the destination's grant, seconds (default 300)");
  b->add_option("--grant-out", begin->grant_out, "Write the destination's grant here (0600, atomically)");
  b->add_flag("--json", begin->json, "Print the storage host's JSON reply");
  b->callback([begin, &exit_code] { exit_code = RunBegin(*begin); });

  for (const char* step : {"commit", "abort", "status"}) {
    auto o = std::make_shared<StepOptions>();
    const std::string name = step;
    CLI::App* cmd = migrate->add_subcommand(name, name == "commit"  ? "Commit: the destination becomes the owner"
                                                  : name == "abort" ? "Abort: revoke the destination's grant"
                                                                    : "Show a migration");
    AddAdminConnectionOptions(cmd, o->connection);
    cmd->add_option("ID", o->id, "Migration id")->required();
    if (name != "status") {
      cmd->add_option("--mount", o->mount, "The destination's affinityfs mount: apply the change there now");
    }
    cmd->add_flag("--json", o->json, "Print the storage host's JSON reply");
    cmd->callback([o, name, &exit_code] { exit_code = RunStep(*o, name); });
  }
}

}  // namespace affinity::ctl
