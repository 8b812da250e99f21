// GuestDisk: a VM image seen as the guest sees its disk, plus the partition
// the inspector reads (partition_table.h). Read-only; no mount, no root.
//
// Containers: "qcow2" (qcow2_image.h) or "raw" (anything else: the file is
// the disk). Guest offsets are bytes of the virtual disk (not of the
// partition); ImageExtents are bytes of the image file.
//
// Thread safety: none; one GuestDisk per thread (it caches qcow2 tables).
// Failure: Open: kFailedPrecondition "not inspectable: ..." when the image
// holds no ext2/3/4 file system or uses a qcow2 feature not handled,
// kCorruption for a malformed container or partition table, the
// ImageFile's errors. ReadGuest: kOutOfRange past the disk's end,
// kFailedPrecondition for a qcow2 cluster only its backing file holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "profile/guest_files.h"
#include "profile/image_file.h"
#include "profile/partition_table.h"
#include "profile/qcow2_image.h"

namespace affinity::profile {

class GuestDisk {
 public:
  static Result<GuestDisk> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::string& container() const { return container_; }  // "raw" | "qcow2"
  const GuestPartition& partition() const { return partition_; }
  uint64_t disk_size() const { return disk_size_; }   // the guest disk's bytes
  uint64_t image_size() const { return file_.size(); }  // the image file's bytes

  // Guest bytes [offset, offset + len) into `buf`. Unallocated and zero
  // qcow2 clusters read as zeros; compressed clusters are inflated.
  Status ReadGuest(uint64_t offset, void* buf, size_t len);

  // Where guest bytes [offset, offset + len) live in the image file, in guest
  // order, adjacent ranges merged. Parts the file does not hold as such
  // (unallocated, zero, compressed or backing-file clusters; past the file's
  // end) are left out. Appends to `out`, merging with its last extent.
  Status MapGuestRange(uint64_t offset, uint64_t len, std::vector<ImageExtent>* out);

 private:
  explicit GuestDisk(ImageFile file) : file_(std::move(file)) {}
  Status ReadQcow2(uint64_t offset, uint8_t* buf, size_t len);

  ImageFile file_;
  std::optional<Qcow2Image> qcow2_;
  std::string container_ = "raw";
  uint64_t disk_size_ = 0;
  GuestPartition partition_;
  // The last compressed cluster inflated: file systems read a cluster's blocks in turn.
  uint64_t inflated_host_offset_ = 0;
  std::vector<uint8_t> inflated_;
};

// Appends [offset, offset + length) to `out`, merging with the last extent when adjacent.
void AppendExtent(std::vector<ImageExtent>* out, uint64_t offset, uint64_t length);

}  // namespace affinity::profile
