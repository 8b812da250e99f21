// Signatures of one image, end to end (docs/signatures.md): detect the
// applications of its guest, learn from the VM's own starts which of their
// files are read early, and turn the signatures plus what OTHER VMs taught
// into block priors, then blend them into the VM's profile. The storage host
// (storage/guest_catalog.h) and `affinityctl profile build --guest-image`
// both run this, so the offline benchmarks measure what the storage host
// serves.
//
// Thread safety: pure functions; `read` and `taught` are called on the
// caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "profile/guest_files.h"
#include "profile/learned_path.h"
#include "profile/profile.h"
#include "profile/profile_builder.h"
#include "profile/signature_db.h"
#include "profile/signature_learner.h"
#include "profile/signature_matcher.h"
#include "profile/signature_priors.h"

namespace affinity::profile {

// Reads guest files of the image at `image_path` through one
// GuestInspector, opened on the first read (detection may need none).
GuestFileReader LazyGuestFileReader(const std::string& image_path);

// Which application a file belongs to, for learning: the first detected
// application (linux-boot last, it is the catch-all of booting) whose needs
// name it, by path pattern or package, or whose dpkg detect rules name the
// package owning it.
FileOwner MakeFileOwner(const std::vector<SignatureMatch>& matches, const SignatureDb& db, const GuestFileMap& map,
                        const GuestFileReader& read);

// What OTHER VMs taught about these applications (storage:
// LearnedSignatures::Aggregate; offline: learned from other images' traces).
using TaughtPaths = std::function<std::vector<LearnedPath>(const std::set<std::string>& applications)>;

struct ImageSignatures {
  std::string image;
  std::vector<SignatureMatch> matches;
  std::vector<LearnedPath> learned;  // what `sessions` (this VM's history) taught: keep it for other VMs
  size_t taught = 0;                 // paths other VMs taught that were used
  std::vector<BlockPrior> priors;
  std::vector<std::string> notes;    // for the log (an unreadable dpkg status, ...)
};

ImageSignatures SignaturesForImage(const SignatureDb& db, const std::string& image, const GuestFileMap& map,
                                   const GuestFileReader& read, const std::vector<SessionTrace>& sessions,
                                   const TaughtPaths& taught, uint32_t block_size = kProfileBlockSize);

// Blends the priors into the profile's image (added if the history has no
// reads of it) with the weight of the profile's sessions, and lists the
// matches in Profile::signatures ("IMAGE: evidence"; one entry per
// application, the evidence of every image joined).
void ApplySignatures(Profile& profile, const ImageSignatures& signatures);

}  // namespace affinity::profile
