// ExtInspector: the files of the ext2/3/4 file system in a GuestDisk's
// chosen partition and where their bytes live in the image file, read with
// libext2fs through GuestIoManager (read-only; nothing is mounted).
//
// Walk visits the tree from "/" depth-first (ext2fs_dir_iterate2). Per
// reachable directory, regular file and symlink: its inode's image bytes
// (inode table block + index * inode size) and its data blocks
// (the extent tree, or the block map for ext2/3 files), mapped to image
// ranges and merged. Directories' data are their directory blocks; fast
// symlinks and inline data live in the inode and have no extents;
// uninitialized extents read as zeros in the guest and are left out.
// Devices, FIFOs and sockets are skipped (nothing to read). Each directory
// is entered once, so a looping or hard-linked directory is listed once.
//
// Hostile input cannot make it hang or run away: InspectOptions bounds the
// files, the depth, the extents per file and the time, and the data blocks
// all files claim together may not exceed the file system's block count
// (a looping block map or cross-linked files would).
//
// Thread safety: none; one ExtInspector per thread.
// Failure: kCorruption naming the inode or path and the libext2fs message
// (com_err) or the GuestDisk's own error; kFailedPrecondition
// "not inspectable: ..." for an ext file system with features libext2fs
// does not support; kNotFound / kInvalidArgument from ReadFile.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "profile/guest_disk.h"
#include "profile/guest_files.h"

struct struct_ext2_filsys;

namespace affinity::profile {

struct GuestIoTarget;

struct InspectOptions {
  uint64_t max_files = 4'000'000;         // entries (paths) listed
  uint32_t max_depth = 256;               // directory nesting below "/"
  uint64_t max_extents_per_file = 1'000'000;  // image extents of one file, after merging
  std::chrono::seconds max_time{600};     // the whole walk
};

class ExtInspector {
 public:
  // REQUIRES: `disk` outlives the inspector.
  static Result<std::unique_ptr<ExtInspector>> Open(GuestDisk* disk);
  ~ExtInspector();
  ExtInspector(const ExtInspector&) = delete;
  ExtInspector& operator=(const ExtInspector&) = delete;

  const std::string& filesystem() const { return filesystem_; }  // "ext2" | "ext3" | "ext4"
  uint32_t block_size() const;

  // Appends every reachable file plus the kMetadata entries, unsorted.
  Status Walk(const InspectOptions& options, std::vector<GuestFile>* files);

  // Up to `max_bytes` of the regular file at `path` (symlinks followed),
  // read through libext2fs: holes and inline data read as the guest sees them.
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

 private:
  class Walker;
  ExtInspector() = default;
  Status Error(long errcode, const std::string& what);
  Result<std::string> ReadContent(uint32_t ino, size_t max_bytes);

  std::unique_ptr<GuestIoTarget> target_;  // what fs_'s io channel reads
  struct struct_ext2_filsys* fs_ = nullptr;
  std::string filesystem_;
};

}  // namespace affinity::profile
