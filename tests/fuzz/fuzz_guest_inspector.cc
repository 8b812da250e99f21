// libFuzzer target: the guest inspector, which reads VM images a tenant
// controls (qcow2 header and tables, MBR/GPT, the ext file system through
// libext2fs). The input is the image file, written to a memfd the inspector
// opens by path. Every failure must be a Status; a map it returns must
// survive the codec; reading a file it listed must not crash either.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "profile/guest_file_map_codec.h"
#include "profile/guest_inspector.h"

namespace {

int ImageFd() {
  static const int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ImageFd();
  if (fd < 0 || size > (1 << 20)) return 0;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  affinity::profile::InspectOptions options;
  options.max_files = 10'000;
  options.max_extents_per_file = 10'000;
  options.max_time = std::chrono::seconds(5);
  auto inspector = affinity::profile::GuestInspector::Open(path);
  if (!inspector.ok()) return 0;
  auto map = (*inspector)->Inspect(options);
  if (!map.ok()) return 0;
  auto back = affinity::profile::DecodeGuestFileMap(affinity::profile::EncodeGuestFileMap(*map));
  if (!back.ok() || !(*back == *map)) __builtin_trap();
  int read = 0;
  for (const auto& f : map->files) {
    if (f.kind != affinity::profile::GuestFileKind::kRegular || ++read > 3) continue;
    (void)(*inspector)->ReadFile(f.path, 1 << 16);
  }
  return 0;
}
