// LearnSignaturePaths: what a VM's own history teaches about its
// applications, as guest PATHS, so it carries to other VMs with the same
// applications, whose files sit at other offsets (docs/signatures.md,
// "Learning from history").
//
// Input: the VM's recorded sessions (byte-exact reads, not the profile's
// 64 KiB blocks: a block holds many small files, and a block-level view would
// teach every neighbour of a file that was read) and the guest file map of
// the image they read. Only VM starts count (an arrival's clock starts
// mid-run, so its times say nothing about boot). A file is read by a session
// when a read overlaps its data (or, for a directory, its directory blocks);
// inode-table reads are not attributed (an inode block holds 16 inodes or
// more), the signature side adds the inodes of every file it names.
//
// What of each file was read is kept as data offsets (LearnedPath::ranges):
// a big file read sparsely (a 29 MiB ICU data file of which start-up reads
// 212 KiB) teaches those bytes, not the whole file.
//
// Attribution: `owner` says which application a file belongs to (its package
// or signature patterns). An owned file becomes a path of that application,
// phase service-start if first read within the boot window (boot for
// linux-boot's own files), else steady. A
// file nobody owns first read within the boot window is part of booting
// Linux (application "linux-boot", phase boot); later, it is this VM's own
// data and is not carried.
//
// Thread safety: pure function. Cost: O((records + extents) log extents).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "profile/guest_files.h"
#include "profile/learned_path.h"
#include "profile/profile_builder.h"

namespace affinity::profile {

inline constexpr const char* kLinuxBootApplication = "linux-boot";

struct LearnOptions {
  uint32_t boot_window_ms = 60'000;
  float min_support = 0.5f;  // read by fewer starts than this: not typical, not carried
};

// The application owning a file, or "" when none does.
using FileOwner = std::function<std::string(const GuestFile&)>;

// Sorted by (application, first_ms, path).
std::vector<LearnedPath> LearnSignaturePaths(const std::vector<SessionTrace>& sessions, const std::string& image,
                                             const GuestFileMap& map, const FileOwner& owner,
                                             const LearnOptions& options = {});

}  // namespace affinity::profile
