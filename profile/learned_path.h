// LearnedPath: a guest path an application was seen reading in a VM's
// history (profile/signature_learner.h makes them; the storage host keeps
// them, storage/learned_signatures.h; profile/signature_priors.h turns them
// into block priors on other VMs).
//
// Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace affinity::profile {

// Bytes of a file, as offsets into its data: the concatenation of its
// extents in file order (holes left out). Two copies of one file (the same
// package version on two images) have the same data offsets wherever their
// blocks sit.
struct FileRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const FileRange&) const = default;
};

struct LearnedPath {
  std::string application;
  std::string path;
  std::string phase;      // "boot" | "service-start" | "steady"; priors ignore other values
  float support = 0;      // share of the VM's starts that read it, 0..1
  uint32_t first_ms = 0;  // median time of first read among them, ms since the start
  std::vector<FileRange> ranges;  // what they read of it, sorted, merged; empty = all of it
  bool operator==(const LearnedPath&) const = default;
};

}  // namespace affinity::profile
