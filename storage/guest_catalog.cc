#include "storage/guest_catalog.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "profile/guest_file_map_codec.h"
#include "profile/guest_inspector.h"

namespace affinity::storage {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The image version an inspection describes.
std::string IdentityKey(const struct stat& st) {
  return std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
         std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  *out = std::move(buf).str();
  return static_cast<bool>(in) || in.eof();
}

}  // namespace

Result<std::unique_ptr<GuestCatalog>> GuestCatalog::Open(const std::string& state_dir, const VolumeStore* store,
                                                         const std::vector<std::string>& signature_dirs) {
  auto learned = LearnedSignatures::Open(state_dir);
  if (!learned.ok()) return learned.status();
  const std::string dir = state_dir + "/inspections";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "create " + dir);
  profile::SignatureDb db = profile::SignatureDb::Load(signature_dirs);
  for (const Status& e : db.errors()) spdlog::warn("signature database: {}", e.ToString());
  std::vector<std::string> apps;
  for (const auto& s : db.signatures()) apps.push_back(s.application);
  spdlog::info("signature database: {} applications ({}) from {}", apps.size(), fmt::join(apps, ", "),
               fmt::join(signature_dirs, ", "));
  return std::unique_ptr<GuestCatalog>(new GuestCatalog(dir, store, std::move(db), std::move(*learned)));
}

GuestCatalog::~GuestCatalog() {
  if (warmup_.joinable()) {
    warmup_.request_stop();
    warmup_.join();
  }
}

std::string GuestCatalog::CachePath(const std::string& vm, const std::string& image) const {
  return dir_ + "/" + vm + "/" + image + ".gfm";
}

std::shared_ptr<const profile::GuestFileMap> GuestCatalog::MapOf(const std::string& vm, const std::string& image,
                                                                 const OpenImage& file) {
  struct stat st {};
  if (::stat(file.ProcPath().c_str(), &st) != 0) return nullptr;
  const std::string key = IdentityKey(st);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(inspect_mu_);
  auto [slot, fresh] = cache_.try_emplace({vm, image});
  Inspection& known = slot->second;
  if (!fresh && (known.key == key || now - known.at < kReinspectInterval)) return known.map;

  // After a restart: the inspection on disk, if it is of this version.
  const std::string cache_file = CachePath(vm, image);
  std::string stored;
  if (fresh && ReadFile(cache_file, &stored)) {
    const size_t eol = stored.find('\n');
    if (eol != std::string::npos && stored.compare(0, eol, key) == 0) {
      auto decoded = profile::DecodeGuestFileMap(std::string_view(stored).substr(eol + 1));
      if (decoded.ok()) {
        known = {key, now, std::make_shared<const profile::GuestFileMap>(std::move(*decoded)), ""};
        return known.map;
      }
      spdlog::warn("inspection cache {}: {}; inspecting again", cache_file, decoded.status().ToString());
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto inspected = profile::InspectImage(file.ProcPath());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  if (!inspected.ok()) {
    const std::string why = inspected.status().ToString();
    if (why != known.error) spdlog::info("vm {} image {}: no application signatures: {}", vm, image, why);
    known = {key, now, nullptr, why};
    return nullptr;
  }
  spdlog::info("vm {} image {}: inspected {} in {} ({}), {} entries, {} ms", vm, image, inspected->filesystem,
               inspected->partition, inspected->container, inspected->files.size(), ms);
  known = {key, now, std::make_shared<const profile::GuestFileMap>(std::move(*inspected)), ""};
  const std::string vm_dir = dir_ + "/" + vm;
  if (::mkdir(vm_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    spdlog::warn("inspection cache {}: {}", vm_dir, ::strerror(errno));
  } else if (Status s = WriteFileAtomically(cache_file, key + "\n" + profile::EncodeGuestFileMap(*known.map), 0600);
             !s.ok()) {
    spdlog::warn("inspection cache {}: {}", cache_file, s.ToString());  // inspected again after a restart
  }
  return known.map;
}

std::vector<profile::ImageSignatures> GuestCatalog::ForVm(const std::string& vm,
                                                          const std::vector<profile::SessionTrace>& sessions) {
  std::vector<profile::ImageSignatures> out;
  auto images = store_->ListImages(vm);
  if (!images.ok()) {
    spdlog::warn("vm {}: no application signatures: {}", vm, images.status().ToString());
    return out;
  }
  const bool starts = std::any_of(sessions.begin(), sessions.end(),
                                  [](const auto& s) { return s.kind == profile::SessionKind::kStart; });
  for (const ImageInfo& info : *images) {
    auto file = store_->OpenImageFile(vm, info.name);
    if (!file.ok()) continue;
    auto map = MapOf(vm, info.name, **file);
    if (map == nullptr) continue;
    // Content (the dpkg database, package lists), read through the open file.
    const profile::GuestFileReader read = profile::LazyGuestFileReader((*file)->ProcPath());
    profile::TaughtPaths taught = [&](const std::set<std::string>& apps) {
      auto known = learned_->Aggregate(apps, vm);
      if (!known.ok()) {
        spdlog::warn("vm {}: learned signatures unreadable: {}", vm, known.status().ToString());
        return std::vector<profile::LearnedPath>{};
      }
      return std::move(*known);
    };
    profile::ImageSignatures sig = profile::SignaturesForImage(db_, info.name, *map, read, sessions, taught);
    for (const std::string& note : sig.notes) spdlog::info("vm {} image {}: {}", vm, info.name, note);
    // A history with no VM start teaches nothing new: keep what older starts taught.
    if (starts && !sig.matches.empty()) {
      if (Status s = learned_->Replace(vm, info.name, sig.learned, NowMs()); !s.ok()) {
        spdlog::warn("vm {} image {}: keeping what its history taught: {}", vm, info.name, s.ToString());
      }
    }
    if (!sig.matches.empty()) out.push_back(std::move(sig));
  }
  return out;
}

void GuestCatalog::StartWarmup() {
  warmup_ = std::jthread([this](std::stop_token stop) {
    auto vms = store_->ListVms();
    if (!vms.ok()) return;
    for (const std::string& vm : *vms) {
      auto images = store_->ListImages(vm);
      if (!images.ok()) continue;
      for (const ImageInfo& info : *images) {
        if (stop.stop_requested()) return;
        auto file = store_->OpenImageFile(vm, info.name);
        if (file.ok()) (void)MapOf(vm, info.name, **file);
      }
    }
  });
}

}  // namespace affinity::storage
