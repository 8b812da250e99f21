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
#include "common/names.h"
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

// "Permission denied (EACCES)".
std::string ErrnoText(int err) {
  const char* name = ::strerrorname_np(err);
  return std::string(std::strerror(err)) + " (" + (name != nullptr ? name : "errno " + std::to_string(err)) + ")";
}

void PrintMigration(const nlohmann::json& m) {
  const std::string source = JsonText(m, "source");
  std::printf("migration    %s\nvm           %s\nstate        %s\nsource       %s\ndestination  %s\n",
              JsonText(m, "id").c_str(), JsonText(m, "vm").c_str(), JsonText(m, "state").c_str(),
              source.empty() ? "(no owner)" : source.c_str(), JsonText(m, "destination").c_str());
  std::printf("deadline     %s\n", UnixTime(JsonNumber(m, "deadline")).c_str());
  if (JsonNumber(m, "ended_at") > 0) std::printf("ended        %s\n", UnixTime(JsonNumber(m, "ended_at")).c_str());
  std::printf("served       %lld blocks of %lld bytes\n", static_cast<long long>(JsonNumber(m, "served_blocks")),
              static_cast<long long>(JsonNumber(m, "served_block_size")));
}

void PrintStale(const nlohmann::json& reply) {
  auto stale = reply.find("stale");
  if (stale == reply.end() || !stale->is_array()) return;
  std::printf("stale        %zu ranges written by the source after the destination fetched them\n", stale->size());
  for (const auto& r : *stale) {
    const std::string image = JsonText(r, "image");
    std::printf("  %s %lld+%lld\n", image.empty() ? "?" : image.c_str(), static_cast<long long>(JsonNumber(r, "offset")),
                static_cast<long long>(JsonNumber(r, "length")));
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
  const std::string grant = JsonText(*reply, "grant");
  if (grant.empty()) return Fail("the storage host sent no grant");
  if (!o.grant_out.empty()) {
    Status s = WriteFileAtomically(o.grant_out, grant + "\n", 0600);
    if (!s.ok()) return Fail(s.message() + " (the migration was begun; abort it or write the grant again)");
  }
  if (o.json) {
    std::printf("%s\n", JsonDump(*reply).c_str());
    return 0;
  }
  PrintMigration(reply->value("migration", nlohmann::json::object()));
  if (o.grant_out.empty()) {
    std::printf("grant        %s\n", grant.c_str());
  } else {
    std::printf("grant        written to %s (read, prefetch; give it to affinityfs --grant)\n", o.grant_out.c_str());
  }
  return 0;
}

int RunStep(const StepOptions& o, const std::string& step) {
  if (Status s = ValidateId("migration ID", o.id); !s.ok()) return Fail(s.message());
  const bool status = step == "status";
  auto reply = CallStorage(o.connection, status ? "GET" : "POST",
                           "/v1/migrations/" + o.id + (status ? std::string() : "/" + step));
  if (!reply.ok()) return Fail(reply.status().message());
  if (o.json) {
    std::printf("%s\n", JsonDump(*reply).c_str());
  } else {
    PrintMigration(reply->value("migration", nlohmann::json::object()));
    PrintStale(*reply);
  }
  if (o.mount.empty()) return 0;
  // The storage host's change stands whatever happens below; say so.
  const std::string done = std::string("the storage host has ") + (step == "commit" ? "committed" : "aborted") +
                           " migration " + o.id + ", but the destination mount " + o.mount + " did not apply it: ";
  // Only an affinityfs mount: a plain directory would take the attribute silently.
  struct statfs fs {};
  if (::statfs(o.mount.c_str(), &fs) != 0) {
    const int err = errno;
    std::fprintf(stderr, "affinityctl: %sstatfs: %s\n", done.c_str(), ErrnoText(err).c_str());
    return 2;
  }
  constexpr long kFuseSuperMagic = 0x65735546;
  char vm[256];
  if (fs.f_type != kFuseSuperMagic || ::getxattr(o.mount.c_str(), "user.affinity.vm", vm, sizeof vm) < 0) {
    std::fprintf(stderr, "affinityctl: %sit is not an affinityfs mount\n", done.c_str());
    return 2;
  }
  static const char kRefresh[] = "refresh";
  if (::setxattr(o.mount.c_str(), "user.affinity.control", kRefresh, sizeof kRefresh - 1, 0) != 0) {
    const int err = errno;
    std::fprintf(stderr, "affinityctl: %ssetxattr user.affinity.control=refresh: %s\n", done.c_str(),
                 ErrnoText(err).c_str());
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
