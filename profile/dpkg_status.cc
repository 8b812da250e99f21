#include "profile/dpkg_status.h"

#include <sstream>
#include <vector>

namespace affinity::profile {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool StatusInstalled(std::string_view status) {
  std::istringstream words{std::string(status)};
  std::string want, flag, state;
  words >> want >> flag >> state;
  return flag == "ok" && state == "installed";
}

struct Stanza {
  size_t first_line = 0;
  std::string package, version, architecture, status;
};

Status Commit(const Stanza& s, DpkgStatus& out) {
  if (s.package.empty()) {
    return Corruption("line " + std::to_string(s.first_line) + ": stanza without a Package field");
  }
  const bool installed = StatusInstalled(s.status);
  DpkgPackage& p = out[s.package];
  if (p.installed && !installed) return Status::Ok();  // another architecture is installed
  p = DpkgPackage{s.version, s.architecture, s.status, installed};
  return Status::Ok();
}

}  // namespace

Result<DpkgStatus> ParseDpkgStatus(std::string_view text) {
  if (text.size() > kMaxDpkgStatusBytes) return Corruption("larger than 64 MiB");
  if (text.find('\0') != std::string_view::npos) return Corruption("contains a NUL byte");
  DpkgStatus out;
  Stanza cur;
  bool in_stanza = false;
  bool have_field = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (Trim(line).empty()) {
      if (in_stanza) {
        if (Status st = Commit(cur, out); !st.ok()) return st;
      }
      cur = Stanza{};
      in_stanza = have_field = false;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      // A continuation (Description, Conffiles): nothing we read spans lines.
      if (!have_field) return Corruption("line " + std::to_string(line_no) + ": continuation without a field");
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      return Corruption("line " + std::to_string(line_no) + ": not a \"Field: value\" line");
    }
    if (!in_stanza) cur.first_line = line_no;
    in_stanza = have_field = true;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = Trim(line.substr(colon + 1));
    if (name == "Package") cur.package = value;
    else if (name == "Version") cur.version = value;
    else if (name == "Architecture") cur.architecture = value;
    else if (name == "Status") cur.status = value;
  }
  if (in_stanza) {
    if (Status st = Commit(cur, out); !st.ok()) return st;
  }
  return out;
}

}  // namespace affinity::profile
