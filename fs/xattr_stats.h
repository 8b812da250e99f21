// The user.affinity.* extended attributes: names and values (docs/xattrs.md).
//
// Values are plain ASCII decimal (ratios with 4 decimals) so that
// `getfattr -d -m '^user\.affinity\.'` prints them readably and scripts parse
// them without a schema.
//
// Thread safety: reads atomics and takes image locks briefly; any thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "fs/access_recorder.h"
#include "fs/prefetch_engine.h"
#include "fs/grant_keeper.h"
#include "fs/vm_cache.h"

namespace affinity::fs {

inline constexpr const char* kXattrPrefix = "user.affinity.";

using XattrList = std::vector<std::pair<std::string, std::string>>;

// Per image file.
XattrList ImageXattrs(ImageCache& image);
// Mount root: totals over all images plus mount-wide settings.
XattrList RootXattrs(VmCache& cache, const std::string& storage_url);
// user.affinity.grant_id, .grant_ops, .grant_expires, .grant_epoch,
// .grant_state (valid|revoked), .grant_revoked_reason, .migration,
// .migration_state, .grant_renewals, .migration_purges, .stale_ranges_invalidated.
XattrList GrantXattrs(const GrantSnapshot& grant);
// user.affinity.accesses_recorded, .accesses_dropped, .accesses_uploaded,
// .accesses_pending, .access_upload_errors.
XattrList AccessXattrs(const AccessRecorderStats& s);
// user.affinity.prefetch_state, .prefetch_queued, .prefetch_inflight,
// .prefetch_planned_bytes, .prefetch_done_bytes, .prefetch_used_bytes,
// .prefetch_wasted_bytes, .prefetch_skipped, .prefetch_accuracy,
// .prefetch_coverage, .demand_misses_while_queued, .prefetch_window,
// .profile_version, .prefetch_error.
XattrList PrefetchXattrs(const PrefetchStats& s);

}  // namespace affinity::fs
