#include "profile/path_glob.h"

#include <fnmatch.h>

#include <algorithm>
#include <string>

namespace affinity::profile {

bool IsGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Status ValidateGlob(std::string_view p) {
  if (p.empty()) return InvalidArgument("empty pattern");
  if (p.size() > kMaxGlobLength) return InvalidArgument("pattern longer than " + std::to_string(kMaxGlobLength));
  if (p[0] != '/') return InvalidArgument("pattern \"" + std::string(p) + "\" is not absolute");
  if (p == "/") return Status::Ok();
  for (char c : p) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return InvalidArgument("control character in pattern");
    if (c == '\\') return InvalidArgument("pattern \"" + std::string(p) + "\": backslash escapes are not supported");
  }
  // Split by hand: an empty component ("//", a trailing "/") is an error here.
  size_t i = 1;
  while (true) {
    size_t j = p.find('/', i);
    std::string_view c = p.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i);
    const std::string quoted = "pattern \"" + std::string(p) + "\": ";
    if (c.empty()) return InvalidArgument(quoted + "empty component");
    if (c == "." || c == "..") return InvalidArgument(quoted + "\".\" or \"..\" component");
    if (c != "**" && c.find("**") != std::string_view::npos) {
      return InvalidArgument(quoted + "\"**\" must be a whole component");
    }
    // fnmatch treats an unclosed '[' as a literal; a signature author meant a
    // class, so refuse it rather than silently match nothing.
    for (size_t k = 0; k < c.size(); ++k) {
      if (c[k] != '[') continue;
      size_t close = k + 1;
      if (close < c.size() && (c[close] == '!' || c[close] == '^')) ++close;
      if (close < c.size() && c[close] == ']') ++close;  // "[]...]": ']' first is literal
      close = c.find(']', close);
      if (close == std::string_view::npos) return InvalidArgument(quoted + "unclosed \"[\"");
      k = close;
    }
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return Status::Ok();
}

bool GlobMatch(std::string_view pattern, std::string_view path) {
  const auto pc = SplitPath(pattern);
  const auto sc = SplitPath(path);
  const size_t m = pc.size();
  const size_t n = sc.size();
  const bool globstar = std::find(pc.begin(), pc.end(), "**") != pc.end();
  // Without "**" components pair up one to one: most candidates end here.
  if (!globstar && m != n) return false;
  std::string pat, name;  // fnmatch needs NUL-terminated strings
  auto component = [&](size_t i, size_t j) {
    pat.assign(pc[i]);
    name.assign(sc[j]);
    return ::fnmatch(pat.c_str(), name.c_str(), FNM_PATHNAME) == 0;
  };
  if (!globstar) {
    for (size_t i = 0; i < m; ++i) {
      if (!component(i, i)) return false;
    }
    return true;
  }
  // match[i * (n + 1) + j]: pattern components i.. match path components j..
  std::vector<char> match((m + 1) * (n + 1), 0);
  auto at = [&](size_t i, size_t j) -> char& { return match[i * (n + 1) + j]; };
  at(m, n) = 1;
  for (size_t i = m; i-- > 0;) {
    for (size_t j = n + 1; j-- > 0;) {
      if (pc[i] == "**") {
        at(i, j) = at(i + 1, j) || (j < n && at(i, j + 1));
      } else if (j < n && at(i + 1, j + 1)) {
        at(i, j) = component(i, j);
      }
    }
  }
  return at(0, 0) != 0;
}

}  // namespace affinity::profile
