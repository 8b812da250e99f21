#include "storage/volume_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/names.h"

namespace affinity::storage {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

FileIdentity IdentityOf(const struct stat& st) {
  uint64_t mtime_ns =
      static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec);
  return {static_cast<uint64_t>(st.st_size), mtime_ns, static_cast<uint64_t>(st.st_ino)};
}

// Takes ownership of `fd` (a directory) and lists its entry names.
Result<std::vector<std::string>> ReadDirNames(UniqueFd fd, const std::string& what) {
  DirPtr dir(::fdopendir(fd.get()));
  if (!dir) return IoError("read " + what + ": " + std::strerror(errno));
  fd.release();  // the DIR owns it now
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(dir.get())) names.emplace_back(e->d_name);
  if (errno != 0) return IoError("read " + what + ": " + std::strerror(errno));
  return names;
}

}  // namespace

Status OpenImage::ReadAt(uint64_t offset, std::span<char> out) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read image " + info_.name + ": " + std::strerror(errno));
    if (n == 0) {
      return Unavailable("image " + info_.name + " ended at " + std::to_string(offset + done) +
                         " while being read (it shrank)");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::unique_ptr<VolumeStore>> VolumeStore::Open(const std::string& root, StateDb* state) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open --root " + root);
  return std::unique_ptr<VolumeStore>(new VolumeStore(std::move(fd), state));
}

Result<std::vector<std::string>> VolumeStore::ListVms() const {
  UniqueFd dir(::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return IoError(std::string("open ROOT: ") + std::strerror(errno));
  auto names = ReadDirNames(std::move(dir), "ROOT");
  if (!names.ok()) return names.status();
  std::vector<std::string> vms;
  for (const std::string& name : *names) {
    if (!ValidateName("vm", name).ok()) continue;
    struct stat st {};
    if (::fstatat(root_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    vms.push_back(name);
  }
  std::sort(vms.begin(), vms.end());
  return vms;
}

Result<UniqueFd> VolumeStore::OpenVmDir(const std::string& vm) const {
  Status s = ValidateName("vm", vm);
  if (!s.ok()) return s;
  UniqueFd fd(::openat(root_.get(), vm.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.valid()) return fd;
  int err = errno;
  struct stat st {};
  bool is_link = ::fstatat(root_.get(), vm.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
  if (err == ELOOP || is_link) return PermissionDenied("vm '" + vm + "' is a symbolic link; refused");
  if (err == ENOENT || err == ENOTDIR) return NotFound("vm '" + vm + "' not found");
  if (err == EACCES) return PermissionDenied("vm '" + vm + "': permission denied on the storage host");
  return IoError("open vm '" + vm + "': " + std::strerror(err));
}

Result<std::vector<ImageInfo>> VolumeStore::ListImages(const std::string& vm) const {
  auto vm_dir = OpenVmDir(vm);
  if (!vm_dir.ok()) return vm_dir.status();
  UniqueFd listing(::openat(vm_dir->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!listing.valid()) return IoError("open vm '" + vm + "': " + std::strerror(errno));
  auto names = ReadDirNames(std::move(listing), "vm '" + vm + "'");
  if (!names.ok()) return names.status();
  std::vector<ImageInfo> images;
  for (const std::string& name : *names) {
    if (!ValidateName("image", name).ok()) continue;
    struct stat st {};
    std::shared_lock stripe(StripeOf(vm, name));
    if (::fstatat(vm_dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    auto generation = state_->Generation(vm, name, IdentityOf(st));
    if (!generation.ok()) return generation.status();
    images.push_back({name, static_cast<uint64_t>(st.st_size), *generation});
  }
  std::sort(images.begin(), images.end(), [](const ImageInfo& a, const ImageInfo& b) { return a.name < b.name; });
  return images;
}

Result<UniqueFd> VolumeStore::OpenImageFd(const std::string& vm, const std::string& image, int flags,
                                          struct stat* st) const {
  auto vm_dir = OpenVmDir(vm);
  if (!vm_dir.ok()) return vm_dir.status();
  Status s = ValidateName("image", image);
  if (!s.ok()) return s;
  const std::string what = "image '" + image + "' of vm '" + vm + "'";
  // O_NONBLOCK: opening a FIFO planted in ROOT must not block an I/O thread.
  UniqueFd fd(::openat(vm_dir->get(), image.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    if (err == ELOOP) return PermissionDenied(what + " is a symbolic link; refused");
    if (err == ENOENT) return NotFound(what + " not found");
    if (err == EACCES) return PermissionDenied(what + ": permission denied on the storage host");
    return IoError("open " + what + ": " + std::strerror(err));
  }
  if (::fstat(fd.get(), st) != 0) return IoError("stat " + what + ": " + std::strerror(errno));
  if (!S_ISREG(st->st_mode)) return NotFound(what + " is not a regular file");
  return fd;
}

std::shared_mutex& VolumeStore::StripeOf(const std::string& vm, const std::string& image) const {
  return write_stripes_[std::hash<std::string>{}(vm + "/" + image) % write_stripes_.size()];
}

Result<std::unique_ptr<OpenImage>> VolumeStore::OpenImageFile(const std::string& vm, const std::string& image) const {
  struct stat st {};
  std::shared_lock stripe(StripeOf(vm, image));
  auto fd = OpenImageFd(vm, image, O_RDONLY, &st);
  if (!fd.ok()) return fd.status();
  auto generation = state_->Generation(vm, image, IdentityOf(st));
  if (!generation.ok()) return generation.status();
  return std::make_unique<OpenImage>(std::move(fd).value(),
                                     ImageInfo{image, static_cast<uint64_t>(st.st_size), *generation});
}

Result<uint64_t> VolumeStore::WriteAt(const std::string& vm, const std::string& image, uint64_t offset,
                                      std::span<const char> data, const std::function<bool()>& abandoned) const {
  std::unique_lock stripe(StripeOf(vm, image));
  // Under the stripe: a write of the same client sent after this one (a
  // retry, or the restarted client) is either already applied, and this
  // one's client gone, or still waiting for the stripe.
  if (abandoned && abandoned()) {
    return Cancelled("the client closed its connection before its write of " + std::to_string(data.size()) +
                     " bytes at " + std::to_string(offset) + " to image '" + image + "' of vm '" + vm +
                     "' was applied; not applied");
  }
  struct stat before {};
  auto fd = OpenImageFd(vm, image, O_WRONLY, &before);
  if (!fd.ok()) return fd.status();
  const std::string what = "image '" + image + "' of vm '" + vm + "'";
  const uint64_t size = static_cast<uint64_t>(before.st_size);
  if (offset > size || data.size() > size - offset) {
    return OutOfRange("a write of " + std::to_string(data.size()) + " bytes at " + std::to_string(offset) +
                      " does not fit in " + what + " (" + std::to_string(size) + " bytes; images do not grow)");
  }
  // From here a crash leaves the file changed without AdoptWrite: say so first.
  Status intent = state_->BeginWrite(vm, image, IdentityOf(before));
  if (!intent.ok()) return intent.WithContext("record the write intent of " + what);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd->get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError("write " + what + ": " + std::strerror(n < 0 ? errno : EIO));
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd->get()) != 0) return IoError("fdatasync " + what + ": " + std::strerror(errno));
  struct stat after {};
  if (::fstat(fd->get(), &after) != 0) return IoError("stat " + what + ": " + std::strerror(errno));
  return state_->AdoptWrite(vm, image, IdentityOf(before), IdentityOf(after));
}

}  // namespace affinity::storage
