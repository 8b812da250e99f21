#include "ctl/stats_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "ctl/stats_format.h"
#include "ctl/xattr_reader.h"

namespace affinity::ctl {
namespace {

struct StatsOptions {
  std::string path;
  bool json = false;
  bool watch = false;
  double interval = 1.0;
};

int RunStats(const StatsOptions& o) {
  for (;;) {
    auto attrs = ReadAffinityXattrs(o.path);
    if (!attrs.ok()) {
      std::fprintf(stderr, "affinityctl stats: %s\n", attrs.status().message().c_str());
      return 1;
    }
    std::string text = o.json ? FormatJson(*attrs) + "\n" : FormatTable(*attrs);
    if (o.watch && ::isatty(1)) std::fputs("\033[H\033[2J", stdout);  // clear the screen between refreshes
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    if (!o.watch) return 0;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval));
  }
}

}  // namespace

void AddStatsCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<StatsOptions>();
  CLI::App* cmd = app.add_subcommand("stats", "Show cache statistics of an affinityfs file or mount root");
  cmd->add_option("path", options->path, "A file on an affinityfs mount, or the mount point")->required();
  cmd->add_flag("--json", options->json, "One JSON object instead of a table");
  cmd->add_flag("--watch", options->watch, "Refresh until interrupted");
  cmd->add_option("--interval", options->interval, "Seconds between refreshes with --watch")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->callback([options, &exit_code] { exit_code = RunStats(*options); });
}

}  // namespace affinity::ctl
