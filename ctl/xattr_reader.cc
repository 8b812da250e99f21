#include "ctl/xattr_reader.h"

#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

namespace affinity::ctl {

Result<Attributes> ReadAffinityXattrs(const std::string& path) {
  constexpr std::string_view kPrefix = "user.affinity.";
  ssize_t size = ::listxattr(path.c_str(), nullptr, 0);
  if (size < 0) return ErrnoStatus(errno, path);
  std::string names(static_cast<size_t>(size), '\0');
  size = ::listxattr(path.c_str(), names.data(), names.size());
  if (size < 0) return ErrnoStatus(errno, path);
  names.resize(static_cast<size_t>(size));
  Attributes out;
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.rfind(kPrefix, 0) != 0) continue;
    char value[4096];
    ssize_t n = ::getxattr(path.c_str(), name.c_str(), value, sizeof value);
    if (n < 0) return ErrnoStatus(errno, path + ": " + name);
    out.emplace_back(name.substr(kPrefix.size()), std::string(value, static_cast<size_t>(n)));
  }
  if (out.empty()) return InvalidArgument(path + " has no user.affinity.* attributes: is it on an affinityfs mount?");
  return out;
}

}  // namespace affinity::ctl
