// AccessState: whether this mount may serve reads right now, and which
// migration a fetch started now belongs to (docs/grants.md, "Destination").
//
// * tag(): the migration whose grant is in use while that migration is open
//   ("" for a standing grant or once the migration is committed). Every
//   chunk fetched is tagged with the tag current when its fetch started.
// * Revoke(migration, reason): reads fail with EACCES (kPermissionDenied
//   and the reason) until Restore(); the migration's tag is purged for good,
//   so a fetch of it that finishes later is discarded, not stored.
// * Restore(tag): a new grant was installed; reads work again.
// * set_writable(bool): whether the grant in use lets this host write (only
//   the VM's owner holds a write grant). WritePermission() is kReadOnly
//   (EROFS) while it does not, or while access is revoked.
//
// Thread safety: every method from any thread (one small mutex).
#pragma once

#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/status.h"

namespace affinity::fs {

class AccessState {
 public:
  std::string tag() const {
    std::lock_guard lock(mu_);
    return tag_;
  }
  void set_tag(std::string tag) {
    std::lock_guard lock(mu_);
    tag_ = std::move(tag);
  }
  bool IsPurged(const std::string& tag) const {
    if (tag.empty()) return false;
    std::lock_guard lock(mu_);
    return purged_.count(tag) != 0;
  }
  // Ok, or why reads are refused now.
  Status ReadPermission() const {
    std::lock_guard lock(mu_);
    return refusal_ ? PermissionDenied(*refusal_) : Status::Ok();
  }
  // Ok, or why writes are refused now (kReadOnly).
  Status WritePermission() const {
    std::lock_guard lock(mu_);
    if (refusal_) return ReadOnly("access is revoked: " + *refusal_);
    if (!writable_) {
      return ReadOnly("this host does not own the VM's images: the grant in use has no 'write' right (writes are "
                      "allowed once a migration to this host is committed, or with the owner's grant)");
    }
    return Status::Ok();
  }
  void set_writable(bool writable) {
    std::lock_guard lock(mu_);
    writable_ = writable;
  }
  bool revoked() const {
    std::lock_guard lock(mu_);
    return refusal_.has_value();
  }

  void Revoke(const std::string& migration, std::string reason) {
    std::lock_guard lock(mu_);
    if (!migration.empty()) purged_.insert(migration);
    refusal_ = std::move(reason);
    tag_.clear();
  }
  void Restore(std::string tag) {
    std::lock_guard lock(mu_);
    refusal_.reset();
    tag_ = std::move(tag);
  }

 private:
  mutable std::mutex mu_;
  std::string tag_;                      // guarded by mu_
  std::set<std::string> purged_;         // guarded by mu_
  std::optional<std::string> refusal_;   // guarded by mu_
  bool writable_ = false;                // guarded by mu_
};

}  // namespace affinity::fs
