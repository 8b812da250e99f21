// DaemonOptions: the affinityfs command line, parsed and validated.
//
//   affinityfs MOUNTPOINT --storage URL --vm NAME --cache-dir DIR --ca-file FILE
//              --cert FILE --key FILE [--chunk-size N] [--cache-size N]
//              [--timeout SECONDS] [--log-level L] [--log-file F] [-f] [-d]
//              [-o fuse-option[,...]]...
//
// Every rule is checked before anything is mounted, so a bad option is a
// clear message and a non-zero exit with nothing left behind.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace affinity::fs {

struct DaemonOptions {
  std::string mountpoint;
  std::string storage_url;
  std::string vm;
  std::string cache_dir;
  std::string ca_file, cert_file, key_file;
  std::string grant_file;                          // --grant: the grant every request carries
  std::chrono::milliseconds grant_poll{2000};      // how often the grant and its migration are checked
  std::chrono::milliseconds upload_interval{5000}; // how often recorded accesses are uploaded
  uint64_t chunk_size = 256 * 1024;
  uint64_t cache_size = 0;  // 0: unlimited
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds writeback_delay{100};  // docs/writes.md
  uint64_t readahead = 16 << 20;
  // Prefetch engine (docs/profile.md).
  std::string prefetch = "adaptive";   // adaptive | fixed (replay the plan in order) | off
  std::string profile_file;            // --profile: use this profile instead of the storage host's
  std::string arrival = "auto";        // auto (live if the grant names a migration) | restart | live
  uint64_t prefetch_background_rate = 0;  // bytes/s for background hydration; 0 = none
  std::string log_level = "info";
  std::string log_file;
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> fuse_options;
};

// Parses argv. On --help / --version returns kCancelled with the text to print
// in the message; on a bad option kInvalidArgument with a one-line reason.
Result<DaemonOptions> ParseDaemonOptions(int argc, char** argv);

}  // namespace affinity::fs
