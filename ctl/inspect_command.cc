#include "ctl/inspect_command.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "ctl/admin_client.h"
#include "profile/block_trace.h"
#include "profile/guest_inspector.h"
#include "profile/trace_attribution.h"

namespace affinity::ctl {
namespace {

struct InspectCommandOptions {
  std::string image;
  std::vector<std::string> traces;
  double window_s = -1;
  int top = -1;
  bool json = false;
};

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

int Inspect(const InspectCommandOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  auto map = profile::InspectImage(o.image);
  if (!map.ok()) return Fail(map.status().ToString());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();

  uint64_t regular = 0, dirs = 0, links = 0, mapped = 0;
  for (const auto& f : map->files) {
    regular += f.kind == profile::GuestFileKind::kRegular;
    dirs += f.kind == profile::GuestFileKind::kDirectory;
    links += f.kind == profile::GuestFileKind::kSymlink;
    for (const auto& e : f.extents) mapped += e.length;
  }
  nlohmann::json j{{"image", o.image},
                   {"image_size", map->image_size},
                   {"container", map->container},
                   {"partition", map->partition},
                   {"filesystem", map->filesystem},
                   {"block_size", map->block_size},
                   {"files", map->files.size()},
                   {"regular", regular},
                   {"directories", dirs},
                   {"symlinks", links},
                   {"mapped_bytes", mapped},
                   {"inspect_ms", ms}};
  if (!o.json) {
    std::printf("image        %s (%llu bytes)\n", o.image.c_str(), U(map->image_size));
    std::printf("container    %s\npartition    %s\nfilesystem   %s (block size %u)\n", map->container.c_str(),
                map->partition.c_str(), map->filesystem.c_str(), map->block_size);
    std::printf("files        %llu regular, %llu directories, %llu symlinks; %llu bytes of data in the image\n",
                U(regular), U(dirs), U(links), U(mapped));
    std::printf("inspected in %lld ms\n", static_cast<long long>(ms));
  }
  nlohmann::json traces = nlohmann::json::array();
  for (const std::string& path : o.traces) {
    auto trace = profile::LoadBlockTrace(path);
    if (!trace.ok()) return Fail(trace.status().ToString());
    const profile::TraceAttribution a = profile::AttributeTrace(*map, *trace, o.window_s);
    size_t shown = o.top < 0 ? a.files.size() : std::min(a.files.size(), static_cast<size_t>(o.top));
    nlohmann::json files = nlohmann::json::array();
    for (size_t i = 0; i < shown; ++i) {
      const auto& f = a.files[i];
      files.push_back({{"path", f.path}, {"first_read_s", f.first_read_s}, {"reads", f.reads}, {"bytes", f.bytes}});
    }
    traces.push_back({{"trace", path},
                      {"window_s", o.window_s},
                      {"reads", a.reads},
                      {"read_bytes", a.read_bytes},
                      {"files_read", a.files.size()},
                      {"unattributed_bytes", a.unattributed_bytes},
                      {"metadata_bytes", a.metadata_bytes},
                      {"files", files}});
    if (o.json) continue;
    std::printf("\ntrace %s%s: %llu reads, %llu bytes, %zu files\n", path.c_str(),
                o.window_s >= 0 ? (" (first " + std::to_string(o.window_s) + " s)").c_str() : "", U(a.reads),
                U(a.read_bytes), a.files.size());
    std::printf("  %12s %12s  %s\n", "first read s", "bytes", "path");
    for (size_t i = 0; i < shown; ++i) {
      std::printf("  %12.6f %12llu  %s\n", a.files[i].first_read_s, U(a.files[i].bytes), a.files[i].path.c_str());
    }
    if (shown < a.files.size()) std::printf("  ... %zu more (--top)\n", a.files.size() - shown);
    std::printf("  not in any file: %llu bytes (%llu of them file-system metadata or inode tables)\n",
                U(a.unattributed_bytes), U(a.metadata_bytes));
  }
  if (o.json) {
    j["traces"] = std::move(traces);
    std::printf("%s\n", JsonDump(j).c_str());
  }
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<InspectCommandOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "The guest files of a VM image (raw or qcow2, ext2/3/4) and which a trace read");
  cmd->add_option("image", o->image, "Image file")->required();
  cmd->add_option("--trace", o->traces, "Block trace CSV (time_s,offset,length,op; zstd -d first), repeatable");
  cmd->add_option("--window-s", o->window_s, "Only the first S seconds of each trace (default: all)");
  cmd->add_option("--top", o->top, "Files to list per trace (default: all)");
  cmd->add_flag("--json", o->json, "JSON output");
  cmd->callback([o, &exit_code] { exit_code = Inspect(*o); });
}

}  // namespace affinity::ctl
