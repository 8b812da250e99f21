#include "acl/grant_file.h"

#include <cerrno>
#include <fstream>

#include "acl/grant_token.h"

namespace affinity::acl {

Result<std::string> ReadGrantFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot read " + path);
  constexpr size_t kLimit = kMaxTokenBytes + 64;  // room for line ends and blanks
  std::string text(kLimit + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return ErrnoStatus(errno, "cannot read " + path);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kLimit) {
    return InvalidArgument(path + " is longer than any grant (" + std::to_string(kMaxTokenBytes) + " bytes at most)");
  }
  const char* blank = " \t\r\n";
  const size_t first = text.find_first_not_of(blank);
  if (first == std::string::npos) return InvalidArgument(path + " is empty");
  return text.substr(first, text.find_last_not_of(blank) - first + 1);
}

}  // namespace affinity::acl
