// Formatting of affinityfs statistics for people (an aligned table) and for
// programs (one JSON object). Pure functions of the attribute list, so the
// tests pin them down without a mount.
//
// How a value is shown follows from its name (docs/xattrs.md):
//   *bytes*, chunk_size, cache_size_limit  byte counts   "1.5 GiB", "256 KiB"
//   *_ratio, *accuracy, *coverage          0..1 ratios   "93.12%"
//   *_us                                   microseconds  "2.50 ms"
//   anything else                          as given
// A value that does not parse as the number its name promises is shown raw.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "ctl/xattr_reader.h"

namespace affinity::ctl {

// A strictly parsed decimal number: the whole string, optional leading '-',
// digits, optional fraction/exponent; never "inf", "nan", hex or spaces.
using Number = std::variant<uint64_t, int64_t, double>;
std::optional<Number> ParseNumber(std::string_view text);

// "1.5 GiB", "512 B", "256 KiB" (exact multiples have no decimals).
std::string HumanBytes(uint64_t bytes);

// The value of attribute `name` as a person reads it (see the table above).
std::string HumanValue(std::string_view name, std::string_view value);

// Aligned "name  value" lines, in the order given, each ending in '\n'.
std::string FormatTable(const Attributes& attrs);

// With the mount root's prefetch_* attributes: one line with a progress bar
// of `width` cells, "prefetch [#####.....]  50% 1 MiB of 2 MiB, 3 queued,
// running, accuracy 90.00%, coverage 75.00%"; "" without them or when off.
std::string FormatPrefetchProgress(const Attributes& attrs, int width = 30);

// One JSON object in the order given; values that parse as numbers
// (ParseNumber) become JSON numbers, everything else strings. Indented with
// two spaces, no trailing newline.
std::string FormatJson(const Attributes& attrs);

}  // namespace affinity::ctl
