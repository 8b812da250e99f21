#include "storage/volume_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/names.h"

namespace affinity::storage {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

uint64_t MtimeNs(const struct stat& st) {
  return static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec);
}

}  // namespace

OpenImage::~OpenImage() { ::close(fd_); }

Result<std::unique_ptr<VolumeStore>> VolumeStore::Open(const std::string& root, GenerationDb* generations) {
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open --root " + root);
  return std::unique_ptr<VolumeStore>(new VolumeStore(fd, generations));
}

VolumeStore::~VolumeStore() { ::close(root_fd_); }

Result<std::vector<std::string>> VolumeStore::ListVms() const {
  int fd = ::openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open root");
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd));
  if (!dir) {
    ::close(fd);
    return ErrnoStatus(errno, "read root");
  }
  std::vector<std::string> out;
  while (dirent* e = ::readdir(dir.get())) {
    std::string name = e->d_name;
    if (!ValidateName("vm", name).ok()) continue;
    struct stat st{};
    if (::fstatat(root_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<int> VolumeStore::OpenVmDir(const std::string& vm) const {
  Status s = ValidateName("vm", vm);
  if (!s.ok()) return s;
  int fd = ::openat(root_fd_, vm.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return fd;
  int err = errno;
  struct stat st{};
  bool is_link = ::fstatat(root_fd_, vm.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
  if (err == ELOOP || is_link) return PermissionDenied("vm '" + vm + "' is a symbolic link; refused");
  if (err == ENOENT || err == ENOTDIR) return NotFound("vm '" + vm + "' not found");
  errno = err;
  return ErrnoStatus(errno, "open vm " + vm);
}

Result<std::vector<ImageInfo>> VolumeStore::ListImages(const std::string& vm) const {
  auto vm_fd = OpenVmDir(vm);
  if (!vm_fd.ok()) return vm_fd.status();
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(*vm_fd));
  if (!dir) {
    ::close(*vm_fd);
    return ErrnoStatus(errno, "read vm " + vm);
  }
  std::vector<ImageInfo> out;
  while (dirent* e = ::readdir(dir.get())) {
    std::string name = e->d_name;
    if (!ValidateName("image", name).ok()) continue;
    struct stat st{};
    if (::fstatat(*vm_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    auto gen = generations_->Generation(vm, name, {static_cast<uint64_t>(st.st_size), MtimeNs(st), st.st_ino});
    if (!gen.ok()) return gen.status();
    out.push_back({name, static_cast<uint64_t>(st.st_size), *gen});
  }
  std::sort(out.begin(), out.end(), [](const ImageInfo& a, const ImageInfo& b) { return a.name < b.name; });
  return out;
}

Result<std::unique_ptr<OpenImage>> VolumeStore::Open(const std::string& vm, const std::string& image) const {
  Status s = ValidateName("image", image);
  if (!s.ok()) return s;
  auto vm_fd = OpenVmDir(vm);
  if (!vm_fd.ok()) return vm_fd.status();
  int fd = ::openat(*vm_fd, image.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int err = errno;
  ::close(*vm_fd);
  if (fd < 0) {
    if (err == ELOOP) return PermissionDenied("image '" + image + "' is a symbolic link; refused");
    if (err == ENOENT) return NotFound("image '" + image + "' of vm '" + vm + "' not found");
    return ErrnoStatus(err, "open image " + vm + "/" + image);
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return NotFound("image '" + image + "' of vm '" + vm + "' is not a regular file");
  }
  auto gen = generations_->Generation(vm, image, {static_cast<uint64_t>(st.st_size), MtimeNs(st), st.st_ino});
  if (!gen.ok()) {
    ::close(fd);
    return gen.status();
  }
  return std::make_unique<OpenImage>(fd, ImageInfo{image, static_cast<uint64_t>(st.st_size), *gen});
}

}  // namespace affinity::storage
