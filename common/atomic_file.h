// WriteFileAtomically: replace `path` with `text` so that a reader sees the
// old content or the new, never a mix: write a temporary file beside it
// (same directory, so rename is atomic), fsync it, rename it over `path`.
// Used for files other processes read while we rewrite them: the storage
// host's --ready-file, grant files (affinityctl --grant-out, and the renewed
// grant affinityfs writes back to --grant).
//
// Failure: ErrnoStatus naming the file; the temporary file is removed.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity {

Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode);

}  // namespace affinity
