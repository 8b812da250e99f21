#include "profile/guest_inspector.h"

#include <algorithm>

namespace affinity::profile {

Result<std::unique_ptr<GuestInspector>> GuestInspector::Open(const std::string& image_path) {
  auto disk = GuestDisk::Open(image_path);
  if (!disk.ok()) return disk.status();
  std::unique_ptr<GuestInspector> self(new GuestInspector);
  self->disk_ = std::make_unique<GuestDisk>(std::move(*disk));
  auto fs = ExtInspector::Open(self->disk_.get());
  if (!fs.ok()) return fs.status().WithContext(image_path);
  self->fs_ = std::move(*fs);
  return self;
}

Result<GuestFileMap> GuestInspector::Inspect(const InspectOptions& options) {
  GuestFileMap map;
  map.container = disk_->container();
  map.partition = disk_->partition().name;
  map.filesystem = fs_->filesystem();
  map.image_size = disk_->image_size();
  map.block_size = fs_->block_size();
  if (Status s = fs_->Walk(options, &map.files); !s.ok()) return s.WithContext(disk_->path());
  std::stable_sort(map.files.begin(), map.files.end(),
                   [](const GuestFile& a, const GuestFile& b) { return a.path < b.path; });
  // A hostile directory can repeat a name; a path is listed once.
  map.files.erase(std::unique(map.files.begin(), map.files.end(),
                              [](const GuestFile& a, const GuestFile& b) { return a.path == b.path; }),
                  map.files.end());
  return map;
}

Result<std::string> GuestInspector::ReadFile(const std::string& guest_path, size_t max_bytes) {
  return fs_->ReadFile(guest_path, max_bytes);
}

Result<GuestFileMap> InspectImage(const std::string& image_path, const InspectOptions& options) {
  auto inspector = GuestInspector::Open(image_path);
  if (!inspector.ok()) return inspector.status();
  return (*inspector)->Inspect(options);
}

Result<std::string> ReadGuestFile(const std::string& image_path, const GuestFile& file, size_t max_bytes) {
  if (file.kind != GuestFileKind::kRegular) return InvalidArgument(file.path + " is not a regular file");
  auto inspector = GuestInspector::Open(image_path);
  if (!inspector.ok()) return inspector.status();
  return (*inspector)->ReadFile(file.path, max_bytes);
}

}  // namespace affinity::profile
