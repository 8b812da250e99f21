// GuestCatalog: what the storage host knows of the guests inside its images
// (issue 6, docs/signatures.md): each image's guest file map, the
// applications detected in it, and what VMs' histories taught about those
// applications, turned into block priors for a VM's profile.
//
// Inspection is cached: in memory and in --state/inspections/VM/IMAGE.gfm
// (profile/guest_file_map_codec.h; survives restarts), keyed by the image's
// (inode, size, mtime). A changed image is inspected again, at most every
// kReinspectInterval (a running guest changes its disk all the time; its
// files rarely move). An image that is not inspectable (no ext2/3/4, a qcow2
// feature not handled) is remembered as such and logged once; it falls back
// to history only. StartWarmup inspects every image in the background at
// start, so the first migration does not wait for it.
//
// Thread safety: every method from any thread; inspections are serialized
// (one at a time: they read whole metadata areas of an image).
// Failure: never fails a profile: an image that cannot be inspected or
// matched just gets no priors (the reason is logged).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "profile/signature_db.h"
#include "profile/signature_profile.h"
#include "storage/learned_signatures.h"
#include "storage/volume_store.h"

namespace affinity::storage {

class GuestCatalog {
 public:
  static constexpr std::chrono::minutes kReinspectInterval{10};

  // `signature_dirs`: the shipped database first, operators' after (later
  // ones override an application of the same name).
  static Result<std::unique_ptr<GuestCatalog>> Open(const std::string& state_dir, const VolumeStore* store,
                                                    const std::vector<std::string>& signature_dirs);
  ~GuestCatalog();

  // The signatures of every inspectable image of `vm`. First learns from
  // `sessions` (vm's history; only its starts teach) and keeps that for the
  // other VMs; the priors come from the signatures and what the other VMs
  // taught.
  std::vector<profile::ImageSignatures> ForVm(const std::string& vm,
                                              const std::vector<profile::SessionTrace>& sessions);

  // Inspects every image of every VM once, in a background thread (stopped
  // by the destructor).
  void StartWarmup();

  const profile::SignatureDb& db() const { return db_; }

 private:
  struct Inspection {
    std::string key;                        // "inode-size-mtime_ns" of the image inspected
    std::chrono::steady_clock::time_point at;
    std::shared_ptr<const profile::GuestFileMap> map;  // null: not inspectable
    std::string error;                      // why not
  };

  GuestCatalog(std::string dir, const VolumeStore* store, profile::SignatureDb db,
               std::unique_ptr<LearnedSignatures> learned)
      : dir_(std::move(dir)), store_(store), db_(std::move(db)), learned_(std::move(learned)) {}

  // The map of an open image, from cache or inspected now; null if not inspectable.
  std::shared_ptr<const profile::GuestFileMap> MapOf(const std::string& vm, const std::string& image,
                                                     const OpenImage& file);
  std::string CachePath(const std::string& vm, const std::string& image) const;

  const std::string dir_;  // --state/inspections
  const VolumeStore* store_;
  const profile::SignatureDb db_;
  std::unique_ptr<LearnedSignatures> learned_;
  std::mutex inspect_mu_;  // one inspection at a time; guards cache_
  std::map<std::pair<std::string, std::string>, Inspection> cache_;
  std::jthread warmup_;
};

}  // namespace affinity::storage
