#include "ctl/xattr_reader.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>

namespace affinity::ctl {
namespace {

constexpr int kAttempts = 8;  // a list or value that keeps growing faster than we read it is a bug

Status NotAffinityfs(const std::string& path) {
  return InvalidArgument(path + " has no user.affinity.* attributes: is it on an affinityfs mount?");
}

// All attribute names of `path`, NUL separated. ERANGE means the list grew
// between the size query and the read: ask again.
Result<std::string> ListNames(const std::string& path) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    ssize_t size = ::listxattr(path.c_str(), nullptr, 0);
    if (size < 0) break;
    std::string names(static_cast<size_t>(size), '\0');
    if (size == 0) return names;
    ssize_t n = ::listxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      return names;
    }
    if (errno != ERANGE) break;
  }
  int err = errno;
  if (err == ENOTSUP) return NotAffinityfs(path);
  return ErrnoStatus(err, path);
}

// One value, read into a buffer grown on ERANGE; kNotFound if it vanished.
Result<std::string> ReadValue(const std::string& path, const std::string& name) {
  std::string value(256, '\0');
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    ssize_t n = ::getxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) break;
    ssize_t size = ::getxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) break;
    value.assign(static_cast<size_t>(size) + 64, '\0');  // headroom: the value is computed on each read
  }
  int err = errno;
  if (err == ENODATA) return NotFound(path + ": " + name + " vanished");
  return ErrnoStatus(err, path + ": " + name);
}

}  // namespace

Result<Attributes> ReadAffinityXattrs(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, path);
  auto names = ListNames(path);
  if (!names.ok()) return names.status();
  Attributes out;
  const std::string& list = *names;
  for (size_t pos = 0; pos < list.size();) {
    size_t end = list.find('\0', pos);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(pos, end - pos);
    pos = end + 1;
    if (name.size() <= kAffinityXattrPrefix.size() || name.compare(0, kAffinityXattrPrefix.size(), kAffinityXattrPrefix) != 0) {
      continue;
    }
    auto value = ReadValue(path, name);
    if (!value.ok()) {
      if (value.status().code() == StatusCode::kNotFound) continue;  // removed while we listed
      return value.status();
    }
    out.emplace_back(name.substr(kAffinityXattrPrefix.size()), std::move(*value));
  }
  if (out.empty()) return NotAffinityfs(path);
  return out;
}

}  // namespace affinity::ctl
