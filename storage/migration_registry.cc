#include "storage/migration_registry.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/random_id.h"
#include "storage/state_dir.h"

namespace affinity::storage {
namespace {

constexpr auto kSweepInterval = std::chrono::milliseconds(500);

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

bool Overdue(const Migration& m, int64_t now) { return m.open() && now > m.deadline; }

std::string NewMigrationId() { return RandomId("m-"); }

std::optional<MigrationState> StateFromName(std::string_view name) {
  for (MigrationState s : {MigrationState::kBegun, MigrationState::kCommitted, MigrationState::kAborted,
                           MigrationState::kExpired}) {
    if (MigrationStateName(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace

std::string_view MigrationStateName(MigrationState s) {
  switch (s) {
    case MigrationState::kBegun:
      return "begun";
    case MigrationState::kCommitted:
      return "committed";
    case MigrationState::kAborted:
      return "aborted";
    case MigrationState::kExpired:
      return "expired";
  }
  return "?";
}

Result<std::unique_ptr<MigrationRegistry>> MigrationRegistry::Open(const std::string& state_dir) {
  auto db = OpenStateDatabase(state_dir, kFileName);
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS vms(vm TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS migrations(id TEXT PRIMARY KEY, vm TEXT NOT NULL, source TEXT NOT NULL,"
      " destination TEXT NOT NULL, images TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL,"
      " deadline INTEGER NOT NULL, ended_at INTEGER NOT NULL, epoch_at_begin INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS revoked_grants(grant_id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);");
  if (!s.ok()) return s;
  std::unique_ptr<MigrationRegistry> r(new MigrationRegistry(std::move(db).value()));
  s = r->Load();
  if (!s.ok()) return s;
  {
    std::lock_guard lock(r->mu_);
    r->ExpireLocked(Now());  // migrations that ran out while we were down
  }
  r->sweeper_ = std::thread([raw = r.get()] { raw->Sweep(); });
  return r;
}

MigrationRegistry::~MigrationRegistry() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

Status MigrationRegistry::Load() {
  std::lock_guard lock(mu_);
  auto vms = db_->Prepare("SELECT vm, owner, epoch FROM vms");
  if (!vms.ok()) return vms.status();
  for (;;) {
    auto row = vms->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    VmOwnership o;
    o.owner = vms->ColumnText(1);
    o.epoch = static_cast<uint64_t>(vms->ColumnInt64(2));
    vms_[vms->ColumnText(0)] = o;
  }
  auto ms = db_->Prepare(
      "SELECT id, vm, source, destination, images, state, created_at, deadline, ended_at, epoch_at_begin "
      "FROM migrations");
  if (!ms.ok()) return ms.status();
  for (;;) {
    auto row = ms->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Migration m;
    m.id = ms->ColumnText(0);
    m.vm = ms->ColumnText(1);
    m.source = ms->ColumnText(2);
    m.destination = ms->ColumnText(3);
    nlohmann::json images = nlohmann::json::parse(ms->ColumnText(4), nullptr, false);
    if (images.is_array()) {
      for (const auto& i : images) {
        if (i.is_string()) m.images.push_back(i.get<std::string>());
      }
    }
    auto state = StateFromName(ms->ColumnText(5));
    if (!state) return Corruption(db_->path() + ": migration " + m.id + " has unknown state " + ms->ColumnText(5));
    m.state = *state;
    m.created_at = ms->ColumnInt64(6);
    m.deadline = ms->ColumnInt64(7);
    m.ended_at = ms->ColumnInt64(8);
    m.epoch_at_begin = static_cast<uint64_t>(ms->ColumnInt64(9));
    if (m.open()) {
      vms_[m.vm].open_migration = m.id;
      open_.insert(m.id);
    }
    migrations_[m.id] = std::move(m);
  }
  auto rv = db_->Prepare("SELECT grant_id FROM revoked_grants");
  if (!rv.ok()) return rv.status();
  for (;;) {
    auto row = rv->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    revoked_.insert(rv->ColumnText(0));
  }
  return Status::Ok();
}

Status MigrationRegistry::StoreVm(const std::string& vm, const VmOwnership& o) {
  auto st = db_->Prepare("INSERT INTO vms(vm, owner, epoch) VALUES(?1, ?2, ?3) "
                         "ON CONFLICT(vm) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch");
  if (!st.ok()) return st.status();
  st->Bind(1, vm).Bind(2, o.owner).Bind(3, static_cast<int64_t>(o.epoch));
  return st->Run();
}

Status MigrationRegistry::StoreMigration(const Migration& m) {
  auto st = db_->Prepare(
      "INSERT OR REPLACE INTO migrations(id, vm, source, destination, images, state, created_at, deadline, "
      "ended_at, epoch_at_begin) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  if (!st.ok()) return st.status();
  st->Bind(1, m.id).Bind(2, m.vm).Bind(3, m.source).Bind(4, m.destination);
  st->Bind(5, nlohmann::json(m.images).dump()).Bind(6, MigrationStateName(m.state));
  st->Bind(7, m.created_at).Bind(8, m.deadline).Bind(9, m.ended_at).Bind(10, static_cast<int64_t>(m.epoch_at_begin));
  return st->Run();
}

VmOwnership MigrationRegistry::Ownership(const std::string& vm) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end()) return VmOwnership{};
  VmOwnership o = it->second;
  if (!o.open_migration.empty() && Overdue(migrations_.at(o.open_migration), Now())) o.open_migration.clear();
  return o;
}

Result<VmOwnership> MigrationRegistry::SetOwner(const std::string& vm, const std::string& holder) {
  std::lock_guard lock(mu_);
  ExpireLocked(Now());
  VmOwnership o = vms_.count(vm) ? vms_[vm] : VmOwnership{};
  if (!o.open_migration.empty()) {
    return FailedPrecondition("vm '" + vm + "' has migration " + o.open_migration +
                              " open; commit or abort it before changing the owner");
  }
  o.owner = holder;
  o.epoch += 1;
  Status s = StoreVm(vm, o);
  if (!s.ok()) return s;
  vms_[vm] = o;
  spdlog::info("vm {}: owner set to {} (epoch {})", vm, holder.substr(0, 16), o.epoch);
  return o;
}

Result<Migration> MigrationRegistry::Begin(const std::string& vm, const std::string& destination,
                                           const std::vector<std::string>& images, int64_t ttl_seconds) {
  std::lock_guard lock(mu_);
  const int64_t now = Now();
  ExpireLocked(now);
  VmOwnership o = vms_.count(vm) ? vms_[vm] : VmOwnership{};
  if (!o.open_migration.empty()) {
    return FailedPrecondition("vm '" + vm + "' already has migration " + o.open_migration +
                              " open; commit or abort it first");
  }
  if (o.owner == destination) {
    return FailedPrecondition("vm '" + vm + "' is already owned by the destination " + destination.substr(0, 16));
  }
  Migration m;
  m.id = NewMigrationId();
  m.vm = vm;
  m.source = o.owner;
  m.destination = destination;
  m.images = images;
  m.created_at = now;
  m.deadline = now + ttl_seconds;
  m.epoch_at_begin = o.epoch;
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = StoreMigration(m);
  if (s.ok()) s = StoreVm(vm, o);
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  o.open_migration = m.id;
  vms_[vm] = o;
  migrations_[m.id] = m;
  open_.insert(m.id);
  spdlog::info("migration {} begun: vm {} from {} to {}, deadline in {} s", m.id, vm,
               m.source.empty() ? "(no owner)" : m.source.substr(0, 16), destination.substr(0, 16), ttl_seconds);
  return m;
}

Result<Migration*> MigrationRegistry::Transition(const std::string& id, MigrationState to) {
  ExpireLocked(Now());
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return NotFound("no migration " + id);
  Migration& m = it->second;
  if (!m.open()) {
    return FailedPrecondition("migration " + id + " is " + std::string(MigrationStateName(m.state)) +
                              "; it cannot be " + std::string(MigrationStateName(to)));
  }
  return &m;
}

Result<Migration> MigrationRegistry::Commit(const std::string& id) {
  std::lock_guard lock(mu_);
  auto found = Transition(id, MigrationState::kCommitted);
  if (!found.ok()) return found.status();
  Migration next = **found;
  next.state = MigrationState::kCommitted;
  next.ended_at = Now();
  VmOwnership o = vms_[next.vm];
  o.owner = next.destination;
  o.epoch += 1;
  o.open_migration.clear();
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = StoreMigration(next);
  if (s.ok()) s = StoreVm(next.vm, o);
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  **found = next;
  vms_[next.vm] = o;
  open_.erase(id);
  spdlog::info("migration {} committed: vm {} now owned by {} (epoch {})", id, next.vm,
               next.destination.substr(0, 16), o.epoch);
  return next;
}

Result<Migration> MigrationRegistry::Abort(const std::string& id) {
  std::lock_guard lock(mu_);
  auto found = Transition(id, MigrationState::kAborted);
  if (!found.ok()) return found.status();
  Migration next = **found;
  next.state = MigrationState::kAborted;
  next.ended_at = Now();
  Status s = StoreMigration(next);
  if (!s.ok()) return s;
  **found = next;
  vms_[next.vm].open_migration.clear();
  open_.erase(id);
  spdlog::info("migration {} aborted: its grants are revoked", id);
  return next;
}

Result<Migration> MigrationRegistry::Find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return NotFound("no migration " + id);
  Migration m = it->second;
  if (Overdue(m, Now())) m.state = MigrationState::kExpired;  // the sweeper records it within 0.5 s
  return m;
}

Status MigrationRegistry::Revoke(const std::string& grant_id) {
  std::lock_guard lock(mu_);
  auto st = db_->Prepare("INSERT OR IGNORE INTO revoked_grants(grant_id, revoked_at) VALUES(?1, ?2)");
  if (!st.ok()) return st.status();
  st->Bind(1, grant_id).Bind(2, Now());
  Status s = st->Run();
  if (!s.ok()) return s;
  revoked_.insert(grant_id);
  spdlog::info("grant {} revoked", grant_id);
  return Status::Ok();
}

bool MigrationRegistry::IsRevoked(const std::string& grant_id) {
  std::lock_guard lock(mu_);
  return revoked_.count(grant_id) != 0;
}

void MigrationRegistry::ExpireLocked(int64_t now) {
  for (auto it = open_.begin(); it != open_.end();) {
    Migration& m = migrations_.at(*it);
    if (now <= m.deadline) {
      ++it;
      continue;
    }
    Migration next = m;
    next.state = MigrationState::kExpired;
    next.ended_at = now;
    Status s = StoreMigration(next);
    if (!s.ok()) {
      // Still refused: Find() reports a begun migration past its deadline as expired.
      spdlog::error("cannot record the expiry of migration {}: {}", m.id, s.ToString());
      ++it;
      continue;
    }
    m = next;
    vms_[m.vm].open_migration.clear();
    spdlog::info("migration {} expired (not committed within its deadline); its grants are revoked", m.id);
    it = open_.erase(it);
  }
}

void MigrationRegistry::Sweep() {
  std::unique_lock lock(mu_);
  while (!stop_cv_.wait_for(lock, kSweepInterval, [this] { return stopping_; })) {
    ExpireLocked(Now());
  }
}

}  // namespace affinity::storage
