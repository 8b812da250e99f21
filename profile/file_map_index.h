// FileMapIndex: path lookups over a GuestFileMap, as the guest would resolve
// them (docs/signatures.md, "Detection").
//
// The inspector lists every inode reachable from "/" without following
// symlinks, so on a merged-/usr guest (Debian 12: /lib -> usr/lib, /sbin ->
// usr/sbin) "/sbin/init" is not in the map: Resolve walks the path component
// by component, following symlinks like the kernel (at most 40), to
// "/usr/lib/systemd/systemd". Glob canonicalizes the pattern's literal head
// the same way ("/lib/systemd/system/*.service" is searched under
// "/usr/lib/systemd/system"); symlinks inside the globbed tail are not
// followed.
//
// Thread safety: immutable after construction. REQUIRES: the map outlives
// the index.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "profile/guest_files.h"

namespace affinity::profile {

class FileMapIndex {
 public:
  explicit FileMapIndex(const GuestFileMap& map);

  const GuestFileMap& map() const { return map_; }

  // The entry with exactly this path (no symlinks followed); nullptr if none.
  const GuestFile* Find(std::string_view path) const;

  // Resolves `path` (absolute), following symlinks in every component and,
  // if `follow_last`, in the last one too (stat vs lstat). nullptr if a
  // component is missing, not a directory, or a link loops. `via`, if given,
  // gets every symlink traversed (the guest reads those too).
  const GuestFile* Resolve(std::string_view path, bool follow_last,
                           std::vector<const GuestFile*>* via = nullptr) const;

  // Every entry matching the glob (REQUIRES: ValidateGlob(pattern).ok()),
  // in path order. A pattern without glob syntax is Resolve(pattern, false).
  std::vector<const GuestFile*> Glob(std::string_view pattern) const;

  // The directories the guest reads to reach `file`: "/", "/usr", ... up
  // to its parent (those the map holds).
  std::vector<const GuestFile*> ParentDirectories(const GuestFile& file) const;

  // The kMetadata entries ("<superblock>", "<group-descriptors>", ...).
  const std::vector<const GuestFile*>& metadata() const { return metadata_; }

 private:
  const GuestFileMap& map_;
  std::vector<const GuestFile*> by_path_;  // non-metadata entries, sorted by path
  std::unordered_map<std::string_view, const GuestFile*> exact_;
  std::vector<const GuestFile*> metadata_;
};

}  // namespace affinity::profile
