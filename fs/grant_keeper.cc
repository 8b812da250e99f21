#include "fs/grant_keeper.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "acl/grant_file.h"
#include "acl/grant_token.h"
#include "common/atomic_file.h"
#include "fs/access_state.h"
#include "fs/chunk_index.h"

namespace affinity::fs {
namespace {

using nlohmann::json;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string CommitAppliedKey(const std::string& migration) { return "commit_applied:" + migration; }

}  // namespace

Result<std::unique_ptr<GrantKeeper>> GrantKeeper::Load(GrantKeeperOptions options) {
  std::unique_ptr<GrantKeeper> k(new GrantKeeper(std::move(options)));
  auto token = acl::ReadGrantFile(k->options_.grant_file);
  if (!token.ok()) return token.status().WithContext("--grant");
  Status s = k->Install(*token, false);
  if (!s.ok()) return InvalidArgument("--grant " + k->options_.grant_file + ": " + s.message());
  return k;
}

GrantKeeper::~GrantKeeper() { Stop(); }

std::string GrantKeeper::Authorization() const {
  std::lock_guard lock(mu_);
  return "Bearer " + token_;
}

Status GrantKeeper::Install(const std::string& token, bool write_back) {
  auto decoded = acl::DecodeGrant(token);
  if (!decoded.ok()) return InvalidArgument("not a grant: " + decoded.status().message());
  if (decoded->claims.vm != options_.vm) {
    return InvalidArgument("the grant is for vm '" + decoded->claims.vm + "', not '" + options_.vm + "'");
  }
  if (write_back) {
    Status s = WriteFileAtomically(options_.grant_file, token + "\n", 0600);
    if (!s.ok()) spdlog::warn("renewed grant: {} (a restart would use the older grant)", s.ToString());
  }
  std::lock_guard lock(mu_);
  const bool same_migration = decoded->claims.migration == claims_.migration;
  token_ = token;
  claims_ = decoded->claims;
  if (!same_migration) snap_.migration_state.clear();
  if (access_ != nullptr) access_->set_writable(claims_.Allows(acl::Operation::kWrite));
  return Status::Ok();
}

void GrantKeeper::Start(fetcher::HttpsClient* client, AccessState* access, ChunkIndex* index, GrantKeeperHooks hooks) {
  client_ = client;
  access_ = access;
  index_ = index;
  hooks_ = std::move(hooks);
  {
    std::lock_guard lock(mu_);
    // Until the migration's state is known, what is fetched belongs to it.
    access_->set_tag(claims_.migration);
    access_->set_writable(claims_.Allows(acl::Operation::kWrite));
  }
  thread_ = std::thread([this] { Loop(); });
}

void GrantKeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GrantKeeper::Poke(const std::string& code) {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
    poke_code_ = code;
  }
  cv_.notify_all();
}

Status GrantKeeper::RefreshNow() {
  std::unique_lock lock(mu_);
  if (!thread_.joinable()) return FailedPrecondition("the grant keeper is not running");
  const uint64_t target = ++rounds_wanted_;
  cv_.notify_all();
  if (!cv_.wait_for(lock, 2 * options_.request_timeout + std::chrono::seconds(1),
                    [&] { return rounds_done_ >= target || stop_; })) {
    return Timeout("the grant refresh did not finish in time (storage host unreachable?)");
  }
  return Status::Ok();
}

GrantSnapshot GrantKeeper::Snapshot() const {
  std::lock_guard lock(mu_);
  GrantSnapshot s = snap_;
  s.grant_id = claims_.grant_id;
  s.migration = claims_.migration;
  s.ops = acl::OperationListString(claims_.ops);
  s.expires = claims_.expires;
  s.epoch = claims_.epoch;
  if (access_ != nullptr) s.revoked = access_->revoked();
  return s;
}

void GrantKeeper::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, options_.poll_interval, [&] { return stop_ || poked_ || rounds_wanted_ > rounds_done_; });
    if (stop_) break;
    const uint64_t serving = rounds_wanted_;
    poked_ = false;
    lock.unlock();
    Round();
    lock.lock();
    rounds_done_ = std::max(rounds_done_, serving);
    cv_.notify_all();
  }
  cv_.notify_all();
}

void GrantKeeper::Round() {
  ReloadFile();
  std::string migration, state, code;
  {
    std::lock_guard lock(mu_);
    migration = claims_.migration;
    state = snap_.migration_state;
    code = poke_code_;
    poke_code_.clear();
  }
  if (!migration.empty() && state != "committed" && state != "aborted" && state != "expired") {
    CheckMigration();
  } else if (migration.empty() && code == "revoked" && !access_->revoked()) {
    RevokeAccess("", "the storage host revoked this host's grant; install a new one with --grant", false);
  }
  MaybeRenew(code == "stale_epoch" || code == "expired");
}

void GrantKeeper::ReloadFile() {
  auto token = acl::ReadGrantFile(options_.grant_file);
  if (!token.ok()) {
    spdlog::warn("{}; keeping the grant in use", token.status().ToString());
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (*token == token_) return;
  }
  Status s = Install(*token, false);
  if (!s.ok()) {
    spdlog::error("--grant {} changed but holds no usable grant ({}); keeping the grant in use", options_.grant_file,
                  s.message());
    return;
  }
  std::string tag;
  {
    std::lock_guard lock(mu_);
    tag = claims_.migration;
    spdlog::info("installed a new grant {} from {} (ops {}, migration {})", claims_.grant_id, options_.grant_file,
                 acl::OperationListString(claims_.ops), tag.empty() ? "-" : tag);
  }
  if (access_->revoked()) spdlog::info("access restored by the new grant");
  access_->Restore(tag);
  std::lock_guard lock(mu_);
  snap_.revoked_reason.clear();
}

void GrantKeeper::CheckMigration() {
  std::string migration;
  {
    std::lock_guard lock(mu_);
    migration = claims_.migration;
  }
  fetcher::Request req;
  req.path = "/v1/migrations/" + migration;
  req.deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  fetcher::FetchOutcome out = client_->Fetch(std::move(req));
  if (!out.status.ok()) {
    const std::string& code = out.failure.server_error;
    if (code == "not_found") {
      RevokeAccess(migration, "migration " + migration + " is unknown to the storage host", true);
    } else {
      spdlog::warn("cannot check migration {}: {}", migration, out.status.ToString());
    }
    return;
  }
  json j = json::parse(out.response.body.begin(), out.response.body.end(), nullptr, false);
  if (!j.is_object() || !j.contains("migration") || !j["migration"].is_object() ||
      !j["migration"].value("state", json()).is_string()) {
    spdlog::warn("migration {}: the storage host's reply is not the documented JSON", migration);
    return;
  }
  const std::string state = j["migration"]["state"].get<std::string>();
  std::string previous;
  {
    std::lock_guard lock(mu_);
    previous = snap_.migration_state;
    snap_.migration_state = state;
  }
  if (state == "aborted" || state == "expired") {
    RevokeAccess(migration, "migration " + migration + " was " + state + "; its grant is revoked and every byte "
                            "fetched under it was purged. Install a new grant to read again",
                 true);
    return;
  }
  if (state == "committed") {
    std::vector<StaleImageRange> stale;
    if (j.contains("stale") && j["stale"].is_array()) {
      for (const json& r : j["stale"]) {
        if (!r.is_object() || !r.value("image", json()).is_string() || !r.value("offset", json()).is_number_unsigned() ||
            !r.value("length", json()).is_number_unsigned()) {
          spdlog::error("migration {}: malformed stale range in the storage host's reply; invalidating nothing "
                        "until it answers properly",
                        migration);
          std::lock_guard lock(mu_);
          snap_.migration_state = previous;
          return;
        }
        stale.push_back({r["image"].get<std::string>(),
                         ByteRange{r["offset"].get<uint64_t>(), r["length"].get<uint64_t>()}});
      }
    }
    ApplyCommit(migration, stale);
    return;
  }
  if (state != "begun") spdlog::warn("migration {} is in an unknown state '{}'", migration, state);
}

void GrantKeeper::ApplyCommit(const std::string& migration, const std::vector<StaleImageRange>& stale) {
  auto applied = index_->GetMeta(CommitAppliedKey(migration));
  if (applied.ok() && *applied == "1") {
    access_->set_tag("");
  } else {
    Status s = hooks_.invalidate ? hooks_.invalidate(stale) : Status::Ok();
    if (!s.ok()) {
      spdlog::error("migration {} committed but invalidating its {} stale ranges failed: {}; retrying next round",
                    migration, stale.size(), s.ToString());
      std::lock_guard lock(mu_);
      snap_.migration_state = "begun";
      return;
    }
    s = index_->SetMeta(CommitAppliedKey(migration), "1");
    if (!s.ok()) spdlog::warn("cannot record that commit {} was applied: {}", migration, s.ToString());
    access_->set_tag("");  // fetched from now on: the new owner's own data
    spdlog::info("migration {} committed: {} stale ranges invalidated; this host owns the images now", migration,
                 stale.size());
    std::lock_guard lock(mu_);
    snap_.invalidated_ranges += stale.size();
  }
  MaybeRenew(true);  // the owner's grant (read, prefetch, write) at the new epoch
}

void GrantKeeper::MaybeRenew(bool force) {
  int64_t nbf = 0, exp = 0;
  std::string migration;
  {
    std::lock_guard lock(mu_);
    nbf = claims_.not_before;
    exp = claims_.expires;
    migration = claims_.migration;
  }
  if (access_->revoked()) return;
  const int64_t now = Now();
  if (!force && now < nbf + (exp - nbf) * 2 / 3) return;
  fetcher::Request req;
  req.method = "POST";
  req.path = "/v1/grants/renew";
  req.deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  fetcher::FetchOutcome out = client_->Fetch(std::move(req));
  if (!out.status.ok()) {
    const std::string& code = out.failure.server_error;
    if (code == "revoked") {
      RevokeAccess(migration, "the storage host revoked this host's grant: " + out.status.message(), !migration.empty());
    } else if (code == "stale_epoch" && !migration.empty()) {
      spdlog::info("grant renewal refused (stale epoch): checking migration {}", migration);
    } else {
      spdlog::warn("grant renewal failed: {}", out.status.ToString());
    }
    return;
  }
  json j = json::parse(out.response.body.begin(), out.response.body.end(), nullptr, false);
  if (!j.is_object() || !j.value("grant", json()).is_string()) {
    spdlog::warn("grant renewal: the storage host's reply is not the documented JSON");
    return;
  }
  Status s = Install(j["grant"].get<std::string>(), true);
  if (!s.ok()) {
    spdlog::warn("grant renewal: {}", s.ToString());
    return;
  }
  std::lock_guard lock(mu_);
  ++snap_.renewals;
  spdlog::info("grant {} renewed until {} (ops {}, epoch {})", claims_.grant_id, claims_.expires,
               acl::OperationListString(claims_.ops),
               claims_.epoch);
}

void GrantKeeper::RevokeAccess(const std::string& migration, const std::string& reason, bool purge) {
  spdlog::error("access revoked: {}", reason);
  access_->Revoke(migration, reason);
  {
    std::lock_guard lock(mu_);
    snap_.revoked_reason = reason;
  }
  if (hooks_.drop_kernel_cache) hooks_.drop_kernel_cache();
  if (purge && !migration.empty() && hooks_.purge) {
    Status s = hooks_.purge(migration);
    if (!s.ok()) {
      spdlog::error("purging the chunks of migration {} failed: {}", migration, s.ToString());
    } else {
      std::lock_guard lock(mu_);
      ++snap_.purges;
    }
  }
  if (hooks_.drop_kernel_cache) hooks_.drop_kernel_cache();  // pages read in while purging
}

}  // namespace affinity::fs
