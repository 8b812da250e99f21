#include "fs/daemon_options.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "common/names.h"

namespace affinity::fs {
namespace {

constexpr uint64_t kMinChunk = 4096;
constexpr uint64_t kMaxChunk = 4 << 20;

Status Readable(const std::string& what, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) return InvalidArgument(what + " '" + path + "' is not a readable file");
  return Status::Ok();
}

}  // namespace

Result<DaemonOptions> ParseDaemonOptions(int argc, char** argv) {
  DaemonOptions o;
  CLI::App app{"affinityfs: FUSE filesystem exposing a VM's image directory from an affinity storage host"};
  app.set_version_flag("--version", "affinityfs 0.1.0");
  app.add_option("mountpoint", o.mountpoint, "Directory to mount on")->required();
  app.add_option("--storage", o.storage_url, "Storage host base URL, https://HOST:PORT")->required();
  app.add_option("--vm", o.vm, "VM whose image directory to mount")->required();
  app.add_option("--cache-dir", o.cache_dir, "Local cache directory")->required();
  app.add_option("--ca-file", o.ca_file, "CA certificate that signed the storage host's certificate")->required();
  app.add_option("--cert", o.cert_file, "This host's client certificate (PEM)")->required();
  app.add_option("--key", o.key_file, "Private key of --cert (PEM)")->required();
  app.add_option("--grant", o.grant_file,
                 "File holding this host's grant (affinityctl migrate begin --grant-out / grant issue --out); "
                 "re-read when it changes, renewed grants are written back")
      ->required();
  double grant_poll_s = 2;
  double upload_s = 5;
  app.add_option("--upload-interval", upload_s,
                 "Seconds between uploads of recorded accesses to the storage host's profiler (0.1 to 3600)");
  app.add_option("--grant-poll", grant_poll_s, "Seconds between checks of the grant and its migration (0.1 to 60)");
  app.add_option("--chunk-size", o.chunk_size, "Chunk size, a power of two from 4K to 4M (e.g. 256K)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--cache-size", o.cache_size, "Cache size limit (e.g. 20G); 0 = unlimited")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--readahead", o.readahead, "Maximum sequential read-ahead window (e.g. 16M); 0 = off")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--prefetch", o.prefetch,
                 "Profile-driven prefetch: adaptive (cost/benefit, successors), fixed (the whole plan in order), off")
      ->check(CLI::IsMember({"adaptive", "fixed", "off"}));
  app.add_option("--profile", o.profile_file,
                 "Prefetch from this profile file (affinityctl profile export/build) instead of asking the storage host");
  app.add_option("--arrival", o.arrival,
                 "What this mount is: restart (the VM boots here), live (a running VM arrives), auto (live when the "
                 "grant names a migration)")
      ->check(CLI::IsMember({"auto", "restart", "live"}));
  app.add_option("--prefetch-background-rate", o.prefetch_background_rate,
                 "Bandwidth cap for background hydration of the rest of the profile (e.g. 20M per second); 0 = none")
      ->transform(CLI::AsSizeValue(false));
  double timeout_s = 60;
  double writeback_delay_s = 0.1;
  app.add_option("--writeback-delay", writeback_delay_s,
                 "Seconds a written chunk waits before its write-back starts, so rewrites coalesce (0 to 60; "
                 "fsync always writes back at once)");
  app.add_option("--timeout", timeout_s, "Seconds a read may wait for the storage host before EIO");
  app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error");
  app.add_option("--log-file", o.log_file, "Log file (default: stderr in the foreground, syslog otherwise)");
  app.add_flag("-f,--foreground", o.foreground, "Stay in the foreground");
  app.add_flag("-d,--debug", o.debug, "libfuse debug output (implies -f)");
  app.add_option("-o", o.fuse_options, "FUSE mount options, comma separated (e.g. allow_other)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Cancelled(app.help());
  } catch (const CLI::CallForVersion&) {
    return Cancelled("affinityfs 0.1.0");
  } catch (const CLI::ParseError& e) {
    return InvalidArgument(e.what());
  }
  if (o.debug) o.foreground = true;
  // The daemon changes directory to "/" when it goes to the background, so
  // every path is made absolute now, relative to where it was started.
  for (std::string* path :
       {&o.mountpoint, &o.cache_dir, &o.ca_file, &o.cert_file, &o.key_file, &o.grant_file, &o.log_file,
        &o.profile_file}) {
    if (!path->empty()) *path = std::filesystem::absolute(*path).lexically_normal().string();
  }

  struct stat st{};
  if (::stat(o.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument("mount point '" + o.mountpoint + "' is not an existing directory");
  }
  if (o.storage_url.rfind("https://", 0) != 0 || o.storage_url.size() <= 8) {
    return InvalidArgument("--storage must be an https:// URL (got '" + o.storage_url + "')");
  }
  while (o.storage_url.back() == '/') o.storage_url.pop_back();
  Status s = ValidateName("vm", o.vm);
  if (!s.ok()) return s.WithContext("--vm");
  for (const auto& [what, path] : {std::pair<std::string, std::string>{"--ca-file", o.ca_file},
                                   {"--cert", o.cert_file},
                                   {"--key", o.key_file},
                                   {"--grant", o.grant_file},
                                   {"--profile", o.profile_file}}) {
    if (path.empty()) continue;
    s = Readable(what, path);
    if (!s.ok()) return s;
  }
  if (o.chunk_size < kMinChunk || o.chunk_size > kMaxChunk || (o.chunk_size & (o.chunk_size - 1)) != 0) {
    return InvalidArgument("--chunk-size must be a power of two from 4K to 4M (got " + std::to_string(o.chunk_size) +
                           ")");
  }
  if (o.cache_size != 0 && o.cache_size < 64 * o.chunk_size) {
    return InvalidArgument("--cache-size must be 0 (unlimited) or at least 64 chunks (" +
                           std::to_string(64 * o.chunk_size) + " bytes)");
  }
  if (!(timeout_s > 0 && timeout_s <= 86400)) return InvalidArgument("--timeout must be in (0, 86400] seconds");
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (!(grant_poll_s >= 0.1 && grant_poll_s <= 60)) return InvalidArgument("--grant-poll must be in [0.1, 60] seconds");
  o.grant_poll = std::chrono::milliseconds(static_cast<int64_t>(grant_poll_s * 1000));
  if (!(upload_s >= 0.1 && upload_s <= 3600)) return InvalidArgument("--upload-interval must be in [0.1, 3600] seconds");
  o.upload_interval = std::chrono::milliseconds(static_cast<int64_t>(upload_s * 1000));
  if (!(writeback_delay_s >= 0 && writeback_delay_s <= 60)) {
    return InvalidArgument("--writeback-delay must be in [0, 60] seconds");
  }
  o.writeback_delay = std::chrono::milliseconds(static_cast<int64_t>(writeback_delay_s * 1000));
  if (o.cache_dir.empty()) return InvalidArgument("--cache-dir must not be empty");
  return o;
}

}  // namespace affinity::fs
