// The guest inspector (issue 6): which guest files of a VM image live where
// in the image file, read from the image directly (no mount, no root, no
// VM). docs/guest-inspection.md describes what is read and what it costs.
//
//   auto map = InspectImage("/srv/images/vm1/root.qcow2");   // GuestFileMap
//
// GuestInspector keeps the image open for several questions (the map, then
// a few files' contents such as /var/lib/dpkg/status); the free functions
// open it for one.
//
// Thread safety: a GuestInspector is used by one thread at a time; the free
// functions are independent calls.
// Failure: kFailedPrecondition "not inspectable: ..." saying what the image
// holds instead of ext2/3/4 (XFS, vfat, no Linux partition, a qcow2 feature
// not handled); kCorruption naming what is malformed (container, partition
// table, file system, a limit of InspectOptions); the image file's
// kNotFound / kIoError.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"
#include "profile/ext_inspector.h"
#include "profile/guest_disk.h"
#include "profile/guest_files.h"

namespace affinity::profile {

class GuestInspector {
 public:
  static Result<std::unique_ptr<GuestInspector>> Open(const std::string& image_path);

  const GuestDisk& disk() const { return *disk_; }
  const std::string& filesystem() const { return fs_->filesystem(); }

  // Every file reachable from "/" plus the kMetadata entries, sorted by path.
  Result<GuestFileMap> Inspect(const InspectOptions& options = {});
  // Up to `max_bytes` of the regular file at `guest_path` (symlinks followed).
  Result<std::string> ReadFile(const std::string& guest_path, size_t max_bytes);

 private:
  GuestInspector() = default;
  std::unique_ptr<GuestDisk> disk_;  // heap: fs_ holds its address
  std::unique_ptr<ExtInspector> fs_;
};

Result<GuestFileMap> InspectImage(const std::string& image_path, const InspectOptions& options = {});

// Up to `max_bytes` of `file` (a kRegular entry of InspectImage's map) as the
// guest reads it; through libext2fs, so holes and inline data are right.
Result<std::string> ReadGuestFile(const std::string& image_path, const GuestFile& file, size_t max_bytes);

}  // namespace affinity::profile
