// Formatting of affinityfs statistics for people (a table) and programs (JSON).
#pragma once

#include <string>

#include "ctl/xattr_reader.h"

namespace affinity::ctl {

// "1.5 GiB" for byte counts; "93.1 %" for ratios; plain numbers otherwise.
std::string HumanValue(const std::string& name, const std::string& value);
// Aligned "name  value" lines, in the order given.
std::string FormatTable(const Attributes& attrs);
// One JSON object; values that parse as numbers become numbers.
std::string FormatJson(const Attributes& attrs);

}  // namespace affinity::ctl
