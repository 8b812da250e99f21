#include "profile/file_map_index.h"

#include <algorithm>
#include <deque>

#include "profile/path_glob.h"

namespace affinity::profile {
namespace {

// Linux's limit on symlinks followed in one lookup (MAXSYMLINKS).
constexpr int kMaxSymlinkHops = 40;

std::string Join(const std::vector<std::string>& parts) {
  if (parts.empty()) return "/";
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out;
}

}  // namespace

FileMapIndex::FileMapIndex(const GuestFileMap& map) : map_(map) {
  for (const GuestFile& f : map.files) {
    if (f.kind == GuestFileKind::kMetadata) {
      metadata_.push_back(&f);
      continue;
    }
    by_path_.push_back(&f);
    exact_.emplace(f.path, &f);
  }
  std::sort(by_path_.begin(), by_path_.end(), [](const GuestFile* a, const GuestFile* b) { return a->path < b->path; });
}

const GuestFile* FileMapIndex::Find(std::string_view path) const {
  auto it = exact_.find(path);
  return it == exact_.end() ? nullptr : it->second;
}

const GuestFile* FileMapIndex::Resolve(std::string_view path, bool follow_last,
                                       std::vector<const GuestFile*>* via) const {
  if (path.empty() || path[0] != '/') return nullptr;
  std::vector<std::string> done;
  std::deque<std::string> todo;
  for (auto c : SplitPath(path)) todo.emplace_back(c);
  int hops = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(c);
    const GuestFile* f = Find(Join(done));
    if (f == nullptr) return nullptr;
    const bool last = todo.empty();
    if (f->kind == GuestFileKind::kSymlink && (!last || follow_last)) {
      if (++hops > kMaxSymlinkHops || f->link_target.empty()) return nullptr;
      if (via != nullptr) via->push_back(f);
      done.pop_back();
      if (f->link_target[0] == '/') done.clear();
      auto parts = SplitPath(f->link_target);
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.emplace_front(*it);
      continue;
    }
    if (!last && f->kind != GuestFileKind::kDirectory) return nullptr;
  }
  return Find(Join(done));
}

std::vector<const GuestFile*> FileMapIndex::Glob(std::string_view pattern) const {
  if (!IsGlob(pattern)) {
    const GuestFile* f = Resolve(pattern, /*follow_last=*/false);
    if (f == nullptr) return {};
    return {f};
  }
  // The literal head ("/lib/systemd/system" of "/lib/systemd/system/*.service")
  // is resolved to its canonical directory; only paths under it are tried.
  const auto parts = SplitPath(pattern);
  size_t head = 0;
  while (head < parts.size() && !IsGlob(parts[head]) && parts[head] != "**") ++head;
  std::string literal;
  for (size_t i = 0; i < head; ++i) literal += "/" + std::string(parts[i]);
  std::string base = "/";
  if (head > 0) {
    const GuestFile* dir = Resolve(literal, /*follow_last=*/true);
    if (dir == nullptr || dir->kind != GuestFileKind::kDirectory) return {};
    base = dir->path;
  }
  std::string tail_pattern = base == "/" ? "" : base;
  for (size_t i = head; i < parts.size(); ++i) tail_pattern += "/" + std::string(parts[i]);

  const std::string prefix = base == "/" ? "/" : base + "/";
  std::vector<const GuestFile*> out;
  // A pattern ending in "**" also matches the base directory itself.
  if (const GuestFile* self = Find(base); self != nullptr && GlobMatch(tail_pattern, self->path)) out.push_back(self);
  auto it = std::lower_bound(by_path_.begin(), by_path_.end(), prefix,
                             [](const GuestFile* f, const std::string& p) { return f->path < p; });
  for (; it != by_path_.end() && (*it)->path.compare(0, prefix.size(), prefix) == 0; ++it) {
    if ((*it)->path == base) continue;
    if (GlobMatch(tail_pattern, (*it)->path)) out.push_back(*it);
  }
  return out;
}

std::vector<const GuestFile*> FileMapIndex::ParentDirectories(const GuestFile& file) const {
  std::vector<const GuestFile*> out;
  if (file.kind == GuestFileKind::kMetadata) return out;
  std::string path = "/";
  if (const GuestFile* root = Find("/"); root != nullptr && file.path != "/") out.push_back(root);
  const auto parts = SplitPath(file.path);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path += (i == 0 ? "" : "/") + std::string(parts[i]);
    if (const GuestFile* d = Find(path); d != nullptr) out.push_back(d);
  }
  return out;
}

}  // namespace affinity::profile
