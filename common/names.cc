#include "common/names.h"

#include <string>

namespace affinity {

Status ValidateName(std::string_view kind, std::string_view name) {
  std::string k(kind);
  if (name.empty()) return InvalidArgument(k + " name is empty");
  if (name.size() > 255) return InvalidArgument(k + " name is longer than 255 bytes");
  if (name == "." || name == "..") return InvalidArgument(k + " name '" + std::string(name) + "' is not allowed");
  if (name.front() == '.') return InvalidArgument(k + " name must not start with '.'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) {
      if (c == '/') return InvalidArgument(k + " name contains '/'");
      return InvalidArgument(k + " name contains a character outside [A-Za-z0-9._-]");
    }
  }
  return Status::Ok();
}

Status ValidateId(std::string_view kind, std::string_view id) {
  std::string k(kind);
  if (id.empty() || id.size() > kMaxIdLength) {
    return InvalidArgument(k + " must be 1.." + std::to_string(kMaxIdLength) + " bytes");
  }
  if (id.front() == '.') return InvalidArgument(k + " must not start with '.'");
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return InvalidArgument(k + " has a character outside [A-Za-z0-9._:-]");
  }
  return Status::Ok();
}

}  // namespace affinity
