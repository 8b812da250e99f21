// LearnedPath: a guest path an application was seen reading in a VM's
// history (profile/signature_learner.h makes them; the storage host keeps
// them, storage/learned_signatures.h; profile/signature_priors.h turns them
// into block priors on other VMs).
//
// Plain data.
#pragma once

#include <cstdint>
#include <string>

namespace affinity::profile {

struct LearnedPath {
  std::string application;
  std::string path;
  std::string phase;      // "boot" | "service-start" | "steady"; priors ignore other values
  float support = 0;      // share of the VM's starts that read it, 0..1
  uint32_t first_ms = 0;  // median time of first read among them, ms since the start
  bool operator==(const LearnedPath&) const = default;
};

}  // namespace affinity::profile
