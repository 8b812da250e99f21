#include "profile/signature_profile.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "profile/file_map_index.h"
#include "profile/guest_inspector.h"
#include "profile/signature_blend.h"

namespace affinity::profile {

GuestFileReader LazyGuestFileReader(const std::string& image_path) {
  auto inspector = std::make_shared<std::unique_ptr<GuestInspector>>();
  return [image_path, inspector](const std::string& path, size_t max_bytes) -> Result<std::string> {
    if (*inspector == nullptr) {
      auto opened = GuestInspector::Open(image_path);
      if (!opened.ok()) return opened.status();
      *inspector = std::move(*opened);
    }
    return (*inspector)->ReadFile(path, max_bytes);
  };
}

FileOwner MakeFileOwner(const std::vector<SignatureMatch>& matches, const SignatureDb& db, const GuestFileMap& map,
                        const GuestFileReader& read) {
  const FileMapIndex index(map);
  // path -> application; emplace keeps the first claim.
  auto owners = std::make_shared<std::unordered_map<std::string, std::string>>();
  auto claim = [&](const std::string& app, const std::vector<const GuestFile*>& files) {
    for (const GuestFile* f : files) owners->emplace(f->path, app);
  };
  std::vector<const SignatureMatch*> order;
  for (const auto& m : matches) {
    if (m.application != kLinuxBootApplication) order.push_back(&m);
  }
  for (const auto& m : matches) {
    if (m.application == kLinuxBootApplication) order.push_back(&m);
  }
  for (const SignatureMatch* m : order) {
    const Signature* sig = db.Find(m->application);
    if (sig == nullptr) continue;
    for (const DetectRule& rule : sig->detect) {
      if (rule.kind == DetectRule::Kind::kDpkg) claim(m->application, PackageFiles(rule.value, index, read));
    }
    for (const SignatureNeed& need : sig->needs) {
      for (const std::string& p : need.paths) claim(m->application, index.Glob(p));
      for (const std::string& p : need.packages) claim(m->application, PackageFiles(p, index, read));
    }
  }
  return [owners](const GuestFile& f) {
    auto it = owners->find(f.path);
    return it == owners->end() ? std::string() : it->second;
  };
}

ImageSignatures SignaturesForImage(const SignatureDb& db, const std::string& image, const GuestFileMap& map,
                                   const GuestFileReader& read, const std::vector<SessionTrace>& sessions,
                                   const TaughtPaths& taught, uint32_t block_size) {
  ImageSignatures out;
  out.image = image;
  out.matches = DetectApplications(db, map, read, &out.notes);
  if (out.matches.empty()) return out;
  if (!sessions.empty()) {
    out.learned = LearnSignaturePaths(sessions, image, map, MakeFileOwner(out.matches, db, map, read));
  }
  std::set<std::string> apps;
  for (const auto& m : out.matches) apps.insert(m.application);
  std::vector<LearnedPath> known = taught ? taught(apps) : std::vector<LearnedPath>{};
  out.taught = known.size();
  // The VM's own lessons count too: its history is blended anyway, but its
  // paths also name the files' inodes and directories, which history may
  // have read before the recording began.
  known.insert(known.end(), out.learned.begin(), out.learned.end());
  out.priors = BuildSignaturePriors(out.matches, db, known, map, read, block_size);
  return out;
}

void ApplySignatures(Profile& profile, const ImageSignatures& s) {
  if (s.matches.empty()) return;
  auto it = std::find_if(profile.images.begin(), profile.images.end(),
                         [&](const ImageProfile& i) { return i.name == s.image; });
  if (it == profile.images.end()) {
    auto at = std::lower_bound(profile.images.begin(), profile.images.end(), s.image,
                               [](const ImageProfile& i, const std::string& name) { return i.name < name; });
    it = profile.images.insert(at, ImageProfile{s.image, {}, {}});
  }
  BlendSignaturePriors(*it, s.priors, profile.sessions);
  for (const SignatureMatch& m : s.matches) {
    std::string evidence = s.image + ": " + m.evidence;
    auto known = std::find_if(profile.signatures.begin(), profile.signatures.end(),
                              [&](const SignatureMatch& x) { return x.application == m.application; });
    if (known == profile.signatures.end()) {
      profile.signatures.push_back({m.application, std::move(evidence)});
    } else {
      known->evidence += "; " + evidence;
    }
  }
}

}  // namespace affinity::profile
