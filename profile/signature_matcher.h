// DetectApplications: which applications of a SignatureDb a guest has
// (docs/signatures.md, "Detection"), from its GuestFileMap and, for the
// dpkg database, the content of its files through a GuestFileReader.
//
// A signature matches if ANY of its detect rules holds:
//   dpkg  a package of that name (fnmatch) is installed per
//         /var/lib/dpkg/status (profile/dpkg_status.h);
//   path  the path exists (file, directory or symlink; globs allowed);
//   unit  the unit is enabled (a symlink of that name in
//         /etc/systemd/system/*.wants/) or its unit file exists in
//         /lib/systemd/system, /usr/lib/systemd/system or
//         /etc/systemd/system (not masked to /dev/null).
// "always" matches a Linux guest: /sbin/init, /lib/systemd/systemd,
// /usr/lib/systemd/systemd or a /boot/vmlinuz*.
// The evidence lists every rule that held, e.g. "dpkg: nginx-core 1.22.1-9
// installed; unit nginx.service enabled (multi-user.target.wants)", at most
// 300 characters of printable ASCII (other bytes of guest names become '?').
//
// The dpkg status is read and parsed at most once per call. One that cannot
// be read or parsed is ignored (its rules do not hold): a match found by
// another rule says "dpkg status unreadable: ...", and so do the notes.
//
// Thread safety: a pure function of its inputs; `read` is called on the
// caller's thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "profile/guest_files.h"
#include "profile/profile.h"
#include "profile/signature_db.h"

namespace affinity::profile {

// Reads at most `max_bytes` of a guest file's content (the guest inspector
// implements it; tests use a map). kNotFound if there is no such file.
using GuestFileReader = std::function<Result<std::string>(const std::string& guest_path, size_t max_bytes)>;

// In signature-name order. `notes`, if given, gets what the storage host
// should log (an unreadable dpkg status).
std::vector<SignatureMatch> DetectApplications(const SignatureDb& db, const GuestFileMap& map,
                                               const GuestFileReader& read,
                                               std::vector<std::string>* notes = nullptr);

}  // namespace affinity::profile
