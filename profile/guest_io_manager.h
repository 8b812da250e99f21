// A libext2fs io_manager whose channel reads one partition of a GuestDisk,
// so ext2fs sees the same bytes the guest does (qcow2 clusters resolved,
// partition offset added) and never touches the image file itself.
//
// ext2fs_open2 takes a device name, not a context: GuestIoName(target)
// encodes the target's address in that name and the manager's open() decodes
// it. The channel is read-only: every write method fails with
// EXT2_ET_RO_FILSYS.
//
// Thread safety: a channel is used by one ext2_filsys on one thread.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "profile/guest_disk.h"

namespace affinity::profile {

// What a channel reads: guest bytes [offset, offset + size) of `disk`.
// REQUIRES: outlives the ext2_filsys opened on it.
struct GuestIoTarget {
  GuestDisk* disk = nullptr;
  uint64_t offset = 0;
  uint64_t size = 0;
  Status last_error;  // why the last failed read failed (ext2fs passes on only an errcode_t)
};

io_manager GuestIoManager();
std::string GuestIoName(GuestIoTarget* target);

}  // namespace affinity::profile
