// Synthetic guest file maps for the signature tests: no image needed.
// Every file gets its own inode slot and its own 64 KiB data blocks, so a
// test can name the blocks a file maps to.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "common/status.h"
#include "profile/guest_files.h"
#include "profile/profile.h"
#include "profile/signature_matcher.h"

namespace affinity::profile::testing {

class GuestMapBuilder {
 public:
  GuestMapBuilder() { Dir("/"); }

  // Adds a directory and its missing parents.
  GuestMapBuilder& Dir(const std::string& path) { return Add(path, GuestFileKind::kDirectory, kProfileBlockSize); }
  GuestMapBuilder& File(const std::string& path, uint64_t size = 1000) {
    return Add(path, GuestFileKind::kRegular, size);
  }
  // A file whose content the reader returns.
  GuestMapBuilder& Content(const std::string& path, std::string text) {
    File(path, text.size());
    contents_[path] = std::move(text);
    return *this;
  }
  GuestMapBuilder& Link(const std::string& path, const std::string& target) {
    Add(path, GuestFileKind::kSymlink, target.size());
    files_[path].link_target = target;
    return *this;
  }
  // Debian 12's merged /usr: /bin, /sbin, /lib, /lib64 are links into /usr.
  GuestMapBuilder& MergedUsr() {
    for (const char* d : {"bin", "sbin", "lib", "lib64"}) {
      Dir(std::string("/usr/") + d);
      Link(std::string("/") + d, std::string("usr/") + d);
    }
    return *this;
  }
  GuestMapBuilder& Metadata(const std::string& name, ImageExtent extent) {
    GuestFile f;
    f.path = name;
    f.kind = GuestFileKind::kMetadata;
    f.extents = {extent};
    metadata_.push_back(f);
    return *this;
  }

  GuestFile& Get(const std::string& path) { return files_.at(path); }

  GuestFileMap Build() const {
    GuestFileMap m{"raw", "whole-disk", "ext4", next_block_ * kProfileBlockSize, 4096, {}};
    for (const auto& [path, f] : files_) m.files.push_back(f);
    for (const auto& f : metadata_) m.files.push_back(f);
    return m;
  }

  // Returns the content of Content() files; kNotFound for others.
  GuestFileReader Reader(int* calls = nullptr) const {
    return [contents = contents_, calls](const std::string& path, size_t max_bytes) -> Result<std::string> {
      if (calls != nullptr) ++*calls;
      auto it = contents.find(path);
      if (it == contents.end()) return NotFound(path);
      return it->second.substr(0, max_bytes);
    };
  }

 private:
  GuestMapBuilder& Add(const std::string& path, GuestFileKind kind, uint64_t size) {
    if (files_.count(path) != 0) return *this;
    if (path != "/") {
      const std::string parent = path.substr(0, path.rfind('/'));
      Dir(parent.empty() ? "/" : parent);
    }
    GuestFile f;
    f.path = path;
    f.kind = kind;
    f.size = size;
    f.inode = {kInodeTable + 256 * inodes_++, 256};
    if (kind != GuestFileKind::kSymlink && size > 0) {
      const uint64_t blocks = (size + kProfileBlockSize - 1) / kProfileBlockSize;
      f.extents = {{next_block_ * kProfileBlockSize, size}};
      next_block_ += blocks;
    }
    files_[path] = f;
    return *this;
  }

  static constexpr uint64_t kInodeTable = 16 * kProfileBlockSize;  // blocks 16..
  uint64_t inodes_ = 0;
  uint64_t next_block_ = 1000;  // data from block 1000 on
  std::map<std::string, GuestFile> files_;
  std::vector<GuestFile> metadata_;
  std::map<std::string, std::string> contents_;
};

inline std::string DpkgStanza(const std::string& package, const std::string& status,
                              const std::string& version = "1.0-1") {
  return "Package: " + package + "\nStatus: " + status + "\nPriority: optional\nArchitecture: amd64\nVersion: " +
         version + "\nDescription: something\n more description\n .\n even more\n\n";
}

}  // namespace affinity::profile::testing
