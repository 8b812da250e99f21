#include "ctl/stats_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
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

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

int RunStats(const StatsOptions& o) {
  const bool clear = o.watch && !o.json && ::isatty(STDOUT_FILENO) == 1;
  for (;;) {
    auto attrs = ReadAffinityXattrs(o.path);
    if (!attrs.ok()) {
      std::fprintf(stderr, "affinityctl stats: %s\n", attrs.status().message().c_str());
      return 1;
    }
    std::string text;
    if (clear) text += "\033[H\033[2J";  // clear the screen between refreshes
    if (o.watch && !o.json) {
      char every[32];
      std::snprintf(every, sizeof every, "%g", o.interval);
      text += o.path + "  (" + Now() + ", every " + every + " s)\n\n";
    }
    if (!o.json) text += FormatPrefetchProgress(*attrs);
    text += o.json ? FormatJson(*attrs) + "\n" : FormatTable(*attrs);
    if (std::fputs(text.c_str(), stdout) < 0 || std::fflush(stdout) != 0) return 1;  // e.g. a closed pipe
    if (!o.watch) return 0;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval));
  }
}

}  // namespace

void AddStatsCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<StatsOptions>();
  CLI::App* cmd = app.add_subcommand("stats", "Show the cache statistics of an affinityfs image file or mount root");
  cmd->add_option("path", options->path, "An image file on an affinityfs mount, or the mount point (totals)")
      ->required();
  cmd->add_flag("--json", options->json, "Print one JSON object (numbers as numbers) instead of a table");
  CLI::Option* watch = cmd->add_flag("--watch", options->watch, "Print again every --interval seconds until interrupted");
  cmd->add_option("--interval", options->interval, "Seconds between refreshes with --watch (default 1)")
      ->check(CLI::Range(0.05, 3600.0))
      ->needs(watch);
  cmd->footer("The attributes are described in docs/xattrs.md.");
  cmd->callback([options, &exit_code] { exit_code = RunStats(*options); });
}

}  // namespace affinity::ctl
