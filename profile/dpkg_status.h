// ParseDpkgStatus: which Debian packages a guest has installed, from the
// text of its /var/lib/dpkg/status (docs/signatures.md, "Detection").
//
// The file is a sequence of RFC 822-like stanzas separated by blank lines;
// a field is "Name: value", a line starting with a space or tab continues the
// previous field. A package counts as installed when the state word of its
// "Status: <want> <flag> <state>" field is "installed" and the flag is "ok":
// its files are on disk whatever the administrator wants next ("hold",
// "deinstall"); "config-files", "half-installed", "not-installed" do not
// count. Several stanzas of one name (multi-arch) count as installed if
// any is.
//
// The input comes from a guest: it is bounded (64 MiB) and anything that is
// not stanzas (a NUL byte, a line that is neither a field nor a
// continuation, a stanza without "Package") makes the whole file kCorruption
// naming the line, never a crash.
//
// Thread safety: pure function.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity::profile {

inline constexpr size_t kMaxDpkgStatusBytes = 64u << 20;

struct DpkgPackage {
  std::string version;       // of the installed stanza, else the last one seen
  std::string architecture;
  std::string status;        // the Status field as written
  bool installed = false;
};

using DpkgStatus = std::map<std::string, DpkgPackage, std::less<>>;  // by package name

Result<DpkgStatus> ParseDpkgStatus(std::string_view text);

}  // namespace affinity::profile
