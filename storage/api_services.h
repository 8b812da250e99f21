// ApiServices: the storage host's parts a request handler may use, gathered
// so handlers take one argument. Every pointer outlives the handlers.
//
// Thread safety: each part documents its own; the struct is constant.
#pragma once

#include "storage/access_log.h"
#include "storage/authorizer.h"
#include "storage/chunk_tracker.h"
#include "storage/grant_issuer.h"
#include "storage/guest_catalog.h"
#include "storage/metrics.h"
#include "storage/migration_registry.h"
#include "storage/range_handler.h"
#include "storage/vm_write_locks.h"
#include "storage/volume_store.h"

namespace affinity::storage {

struct ApiServices {
  const VolumeStore* store = nullptr;
  Metrics* metrics = nullptr;
  const RangeHandler* ranges = nullptr;
  const Authorizer* authorizer = nullptr;
  const GrantIssuer* issuer = nullptr;
  MigrationRegistry* registry = nullptr;
  ChunkTracker* tracker = nullptr;
  VmWriteLocks* write_locks = nullptr;
  AccessLog* access_log = nullptr;
  GuestCatalog* guests = nullptr;  // null: profiles are history only
};

}  // namespace affinity::storage
