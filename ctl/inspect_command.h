// `affinityctl inspect IMAGE [--json] [--trace TRACE.csv ...] [--window-s S]`
// (docs/guest-inspection.md): the guest file system of a VM image, read
// from the image file directly (no mount, no root). Prints the container,
// partition, file system and file counts; with --trace (CSV
// time_s,offset,length,op as bench/traces/*.csv.zst hold after zstd -d),
// the files each trace read within its first S seconds (path, first read,
// bytes) by first read, and the bytes read outside any file's data.
// What engineers derive application signatures from.
#pragma once

#include <CLI/CLI.hpp>

namespace affinity::ctl {

void AddInspectCommand(CLI::App& app, int& exit_code);

}  // namespace affinity::ctl
