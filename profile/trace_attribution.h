// Which guest files a block trace read: the reads of a trace (block_trace.h)
// laid over a GuestFileMap's image ranges. What engineers derive
// application signatures from (affinityctl inspect --trace).
//
// A read's bytes count for the file whose data extents (directory blocks
// for a directory) they fall in; bytes in no file's data are unattributed,
// and of those, the ones in file-system metadata (kMetadata entries and
// inode-table bytes of listed inodes) are counted apart. Hard links share
// extents; their bytes count for the first path in map order. Writes are
// ignored.
//
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "profile/block_trace.h"
#include "profile/guest_files.h"

namespace affinity::profile {

struct FileReads {
  std::string path;
  double first_read_s = 0;  // the trace's time of the first read touching it
  uint64_t reads = 0;       // reads touching it
  uint64_t bytes = 0;       // bytes of those reads inside its extents (re-reads counted again)
};

struct TraceAttribution {
  std::vector<FileReads> files;     // sorted by first read, then path
  uint64_t reads = 0;               // reads within the window
  uint64_t read_bytes = 0;
  uint64_t unattributed_bytes = 0;  // in no file's data
  uint64_t metadata_bytes = 0;      // of those, in metadata or inode tables
};

// Reads at or after `window_s` seconds are left out (negative: the whole trace).
TraceAttribution AttributeTrace(const GuestFileMap& map, const std::vector<TraceRecord>& trace, double window_s);

}  // namespace affinity::profile
