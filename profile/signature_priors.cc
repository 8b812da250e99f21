#include "profile/signature_priors.h"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>
#include <utility>

#include "profile/file_map_index.h"
#include "profile/path_glob.h"

namespace affinity::profile {
namespace {

// Files of a package that no service reads on its own: documentation, man
// pages, translations of docs, packaging metadata. Prefetching them is waste.
constexpr std::string_view kNeverReadPrefixes[] = {"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/",
                                                   "/usr/share/lintian/", "/usr/share/bug/"};

float PriorityScore(SignaturePriority p) {
  switch (p) {
    case SignaturePriority::kCritical: return kCriticalPriorScore;
    case SignaturePriority::kEarly: return kEarlyPriorScore;
    case SignaturePriority::kBackground: return kBackgroundPriorScore;
  }
  return kBackgroundPriorScore;
}

bool Stronger(const BlockPrior& a, const BlockPrior& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.first_ms < b.first_ms;
}

class PriorBuilder {
 public:
  PriorBuilder(const FileMapIndex& index, uint32_t block_size) : index_(index), block_size_(block_size) {}

  // `file` with its directories and, for a symlink, its target; once per
  // (file, proto) group.
  // `ranges` (data offsets; null = all) limits what of `file` itself is added.
  void AddResolved(const GuestFile& file, const BlockPrior& proto, size_t group,
                   const std::vector<FileRange>* ranges = nullptr) {
    AddWithParents(file, proto, group, ranges);
    if (file.kind != GuestFileKind::kSymlink) return;
    std::vector<const GuestFile*> via;
    const GuestFile* target = index_.Resolve(file.path, /*follow_last=*/true, &via);
    for (const GuestFile* link : via) AddWithParents(*link, proto, group);
    if (target != nullptr) AddWithParents(*target, proto, group);
  }

  void AddFile(const GuestFile& f, const BlockPrior& proto, const std::vector<FileRange>* ranges = nullptr) {
    AddRange(f.inode.offset, f.inode.length, proto);
    if (ranges != nullptr && !ranges->empty()) {
      AddDataRanges(f, *ranges, proto);
      return;
    }
    uint64_t left = kMaxPriorBytesPerFile;
    for (const ImageExtent& e : f.extents) {
      if (left == 0) break;
      const uint64_t take = std::min(e.length, left);
      AddRange(e.offset, take, proto);
      left -= take;
    }
  }

  std::vector<BlockPrior> Take() {
    std::vector<BlockPrior> out;
    out.reserve(by_block_.size());
    for (auto& [block, prior] : by_block_) out.push_back(prior);
    std::sort(out.begin(), out.end(), [](const BlockPrior& a, const BlockPrior& b) { return a.block < b.block; });
    return out;
  }

 private:
  void AddWithParents(const GuestFile& file, const BlockPrior& proto, size_t group,
                      const std::vector<FileRange>* ranges = nullptr) {
    if (!done_.insert({&file, group}).second) return;
    AddFile(file, proto, ranges);
    for (const GuestFile* dir : index_.ParentDirectories(file)) {
      if (done_.insert({dir, group}).second) AddFile(*dir, proto);
    }
  }

  // Data offsets -> image ranges, through the extents in file order.
  void AddDataRanges(const GuestFile& f, const std::vector<FileRange>& ranges, const BlockPrior& proto) {
    uint64_t data = 0;
    for (const ImageExtent& e : f.extents) {
      for (const FileRange& r : ranges) {
        const uint64_t from = std::max(r.offset, data);
        const uint64_t to = std::min(r.offset + r.length, data + e.length);
        if (from < to) AddRange(e.offset + (from - data), to - from, proto);
      }
      data += e.length;
    }
  }

  void AddRange(uint64_t offset, uint64_t length, const BlockPrior& proto) {
    if (length == 0) return;
    const uint64_t first = offset / block_size_;
    const uint64_t last = (offset + length - 1) / block_size_;
    for (uint64_t b = first; b <= last && b <= std::numeric_limits<uint32_t>::max(); ++b) {
      BlockPrior p = proto;
      p.block = static_cast<uint32_t>(b);
      auto [it, inserted] = by_block_.try_emplace(p.block, p);
      if (!inserted && Stronger(p, it->second)) it->second = p;
    }
  }

  const FileMapIndex& index_;
  const uint32_t block_size_;
  std::unordered_map<uint32_t, BlockPrior> by_block_;
  std::set<std::pair<const GuestFile*, size_t>> done_;  // (file, group) already added
};

}  // namespace

std::vector<const GuestFile*> PackageFiles(const std::string& package, const FileMapIndex& index,
                                           const GuestFileReader& read) {
  std::set<const GuestFile*> lists;
  for (const std::string& pattern : {"/var/lib/dpkg/info/" + package + ".list",
                                     "/var/lib/dpkg/info/" + package + ":*.list"}) {
    for (const GuestFile* f : index.Glob(pattern)) lists.insert(f);
  }
  std::vector<const GuestFile*> out;
  for (const GuestFile* list : lists) {
    if (!read) break;
    Result<std::string> text = read(list->path, kMaxPackageListBytes);
    if (!text.ok()) continue;  // the package's other lists may still be read
    size_t pos = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) end = text->size();
      std::string_view line(text->data() + pos, end - pos);
      pos = end + 1;
      if (line.empty() || line[0] != '/' || line == "/.") continue;
      if (std::any_of(std::begin(kNeverReadPrefixes), std::end(kNeverReadPrefixes),
                      [&](std::string_view p) { return line.substr(0, p.size()) == p; })) {
        continue;
      }
      // Directories of a package are reached through its files' paths.
      const GuestFile* f = index.Resolve(line, /*follow_last=*/false);
      if (f != nullptr && f->kind != GuestFileKind::kDirectory) out.push_back(f);
    }
  }
  return out;
}

namespace {

// One thing a need names: a path glob or a package.
struct NeedItem {
  const SignatureNeed* need;
  const std::string* path;     // or
  const std::string* package;
};

}  // namespace

std::vector<BlockPrior> BuildSignaturePriors(std::span<const SignatureMatch> matches, const SignatureDb& db,
                                             std::span<const LearnedPath> learned, const GuestFileMap& map,
                                             const GuestFileReader& read, uint32_t block_size) {
  if (block_size == 0) return {};
  const FileMapIndex index(map);
  PriorBuilder builder(index, block_size);
  size_t group = 0;

  // Learned paths first: their files are then not guessed by the signature.
  std::set<std::pair<uint32_t, const GuestFile*>> learned_files;
  for (const LearnedPath& lp : learned) {
    auto m = std::find_if(matches.begin(), matches.end(),
                          [&](const SignatureMatch& s) { return s.application == lp.application; });
    SignaturePhase phase;
    if (m == matches.end() || !ParseSignaturePhase(lp.phase, &phase)) continue;
    const GuestFile* f = index.Resolve(lp.path, /*follow_last=*/false);
    if (f == nullptr) continue;
    const auto app = static_cast<uint32_t>(m - matches.begin());
    BlockPrior proto;
    proto.score = std::clamp(lp.support, kMinLearnedScore, kMaxLearnedScore);
    proto.first_ms = lp.first_ms;
    proto.boot_support = phase == SignaturePhase::kBoot ? proto.score : 0;
    proto.application = app;
    builder.AddResolved(*f, proto, group++, &lp.ranges);
    learned_files.insert({app, f});
  }

  for (uint32_t app = 0; app < matches.size(); ++app) {
    const Signature* sig = db.Find(matches[app].application);
    if (sig == nullptr) continue;
    // Items in listed order, per phase, for spreading first_ms.
    std::vector<NeedItem> by_phase[3];
    for (const SignatureNeed& need : sig->needs) {
      auto& items = by_phase[static_cast<size_t>(need.phase)];
      for (const std::string& p : need.paths) items.push_back({&need, &p, nullptr});
      for (const std::string& p : need.packages) items.push_back({&need, nullptr, &p});
    }
    for (size_t phase = 0; phase < 3; ++phase) {
      const auto& items = by_phase[phase];
      for (size_t k = 0; k < items.size(); ++k) {
        const SignatureNeed& need = *items[k].need;
        BlockPrior proto;
        proto.score = PriorityScore(need.priority);
        proto.application = app;
        const uint64_t spread = static_cast<uint64_t>(k);
        switch (need.phase) {
          case SignaturePhase::kBoot:
            proto.first_ms = static_cast<uint32_t>(kBootSpreadMs * spread / items.size());
            proto.boot_support = proto.score;
            break;
          case SignaturePhase::kServiceStart: proto.first_ms = kServiceStartMs; break;
          case SignaturePhase::kSteady:
            proto.first_ms = static_cast<uint32_t>(kSteadyStartMs + kSteadySpreadMs * spread / items.size());
            break;
        }
        if (need.phase == SignaturePhase::kBoot) {
          // Every mount reads the file-system metadata first.
          BlockPrior meta = proto;
          meta.first_ms = 0;
          for (const GuestFile* f : index.metadata()) builder.AddFile(*f, meta);
        }
        const std::vector<const GuestFile*> files =
            items[k].path != nullptr ? index.Glob(*items[k].path) : PackageFiles(*items[k].package, index, read);
        const size_t g = group++;
        for (const GuestFile* f : files) {
          if (learned_files.count({app, f}) != 0) continue;
          builder.AddResolved(*f, proto, g);
        }
      }
    }
  }
  return builder.Take();
}

}  // namespace affinity::profile
