// affinityfs: the destination host's FUSE daemon (see docs/architecture.md).
//
// Start-up order matters: options are validated first (nothing mounted on a
// bad option); when daemonizing we fork *before* any thread exists and the
// parent waits on a pipe until the child has mounted (exit 0) or failed (the
// child's message, exit 1), so `affinityfs ...; ls MOUNTPOINT` just works.
#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "common/logging.h"
#include "fetcher/https_client.h"
#include "fs/daemon_options.h"
#include "fs/access_recorder.h"
#include "fs/grant_keeper.h"
#include "fs/xattr_stats.h"
#include "fs/fuse_server.h"
#include "fs/image_listing.h"
#include "fs/prefetch_engine.h"
#include "profile/profile_codec.h"
#include "fs/remote_chunk_source.h"
#include "fs/vm_cache.h"

namespace {

using affinity::Status;
using affinity::StatusCode;

// Parent side of daemonizing: wait for the child's verdict.
int WaitForChild(int read_fd, pid_t child) {
  std::string message;
  char buf[512];
  ssize_t n;
  while ((n = ::read(read_fd, buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
  if (message == "OK") return 0;
  if (message.empty()) {
    int status = 0;
    ::waitpid(child, &status, 0);
    std::fprintf(stderr, "affinityfs: the daemon exited during start-up (status %d)\n", status);
  } else {
    std::fprintf(stderr, "affinityfs: %s\n", message.c_str());
  }
  return 1;
}

class StartupReporter {
 public:
  explicit StartupReporter(int fd) : fd_(fd) {}
  void Fail(const Status& s) {
    std::string m = s.ToString();
    spdlog::error("start-up failed: {}", m);
    if (fd_ >= 0) {
      (void)!::write(fd_, m.data(), m.size());
      ::close(fd_);
      fd_ = -1;
    } else {
      std::fprintf(stderr, "affinityfs: %s\n", m.c_str());
    }
  }
  void Succeed() {
    if (fd_ < 0) return;
    (void)!::write(fd_, "OK", 2);
    ::close(fd_);
    fd_ = -1;
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      if (devnull > 2) ::close(devnull);
    }
  }

 private:
  int fd_;
};

// Where the prefetch engine gets its profile: --profile, or the storage host
// (GET /v1/vms/{vm}/profile under this host's grant), on the engine's thread.
affinity::fs::PrefetchEngine::Loader ProfileLoader(const affinity::fs::DaemonOptions& o,
                                                   affinity::fetcher::HttpsClient* client) {
  if (!o.profile_file.empty()) {
    return [path = o.profile_file](const affinity::fs::PrefetchEngine::LoadDone& done) {
      done(affinity::profile::ReadProfileFile(path));
    };
  }
  return [client, vm = o.vm, timeout = o.timeout](affinity::fs::PrefetchEngine::LoadDone done) {
    affinity::fetcher::Request request;
    request.path = "/v1/vms/" + vm + "/profile";
    request.deadline = std::chrono::steady_clock::now() + timeout;
    client->Submit(request, [done = std::move(done), path = request.path](affinity::fetcher::FetchOutcome outcome) {
      if (!outcome.status.ok()) return done(outcome.status.WithContext("GET " + path));
      const auto& body = outcome.response.body;
      done(std::string(body.begin(), body.end()));
    });
  };
}

int Serve(const affinity::fs::DaemonOptions& o, StartupReporter& reporter) {
  namespace fs = affinity::fs;
  namespace fetcher = affinity::fetcher;

  fs::GrantKeeperOptions grant_options;
  grant_options.grant_file = o.grant_file;
  grant_options.vm = o.vm;
  grant_options.poll_interval = o.grant_poll;
  grant_options.request_timeout = std::min(o.timeout, std::chrono::milliseconds(10000));
  auto keeper = fs::GrantKeeper::Load(grant_options);
  if (!keeper.ok()) {
    reporter.Fail(keeper.status());
    return 1;
  }
  fs::GrantKeeper* grants = keeper->get();

  fetcher::ClientConfig cfg;
  cfg.authorization = [grants] { return grants->Authorization(); };
  cfg.base_url = o.storage_url;
  cfg.ca_file = o.ca_file;
  cfg.cert_file = o.cert_file;
  cfg.key_file = o.key_file;
  cfg.attempt_timeout = std::min(o.timeout, cfg.attempt_timeout);
  auto client = fetcher::HttpsClient::Create(cfg);
  if (!client.ok()) {
    reporter.Fail(client.status());
    return 1;
  }

  fs::VmCacheOptions cache_options{o.cache_dir, o.vm, static_cast<uint32_t>(o.chunk_size), o.cache_size, {}};
  cache_options.write_back.delay = o.writeback_delay;
  cache_options.write_back.request_timeout = o.timeout;
  auto listing = fs::FetchImageListing(**client, o.vm, std::chrono::steady_clock::now() + o.timeout);
  if (!listing.ok()) {
    StatusCode code = listing.status().code();
    auto cached = fs::VmCache::CachedListing(cache_options);
    const bool refused_migration =
        code == StatusCode::kPermissionDenied && !grants->claims().migration.empty();
    if ((code == StatusCode::kUnavailable || code == StatusCode::kTimeout || refused_migration) && cached.ok() &&
        !cached->empty()) {
      spdlog::warn("{}; mounting with the image list of the previous run (reads of uncached data will wait for "
                   "the storage host)",
                   listing.status().ToString());
      listing = std::move(cached);
    } else {
      reporter.Fail(listing.status());
      return 1;
    }
  }

  fs::RemoteChunkSource source(client->get(), o.vm, [grants](const std::string& code) { grants->Poke(code); });
  auto cache = fs::VmCache::Open(cache_options, *listing, &source, &source);
  if (!cache.ok()) {
    reporter.Fail(cache.status());
    return 1;
  }
  for (const auto& image : (*cache)->images()) image->set_max_readahead_bytes(o.readahead);

  fs::AccessRecorderOptions recorder_options;
  recorder_options.db_path = o.cache_dir + "/" + o.vm + "/accesses.sqlite";
  recorder_options.vm = o.vm;
  for (const auto& image : (*cache)->images()) recorder_options.images.push_back(image->record().name);
  recorder_options.upload_interval = o.upload_interval;
  const bool live = o.arrival == "live" || (o.arrival == "auto" && !grants->claims().migration.empty());
  recorder_options.kind = live ? affinity::profile::SessionKind::kArrival : affinity::profile::SessionKind::kStart;
  auto recorder = fs::AccessRecorder::Open(recorder_options);
  if (!recorder.ok()) {
    reporter.Fail(recorder.status());
    return 1;
  }
  fs::AccessRecorder* accesses = recorder->get();

  std::unique_ptr<fs::PrefetchEngine> engine;
  if (o.prefetch != "off") {
    fs::PrefetchEngineOptions engine_options;
    engine_options.adaptive = o.prefetch == "adaptive";
    engine_options.plan.arrival = live ? affinity::profile::Arrival::kLiveMigration : affinity::profile::Arrival::kRestart;
    engine_options.plan.background = o.prefetch_background_rate > 0;
    engine_options.background_bytes_per_s = o.prefetch_background_rate;
    engine_options.max_window = static_cast<uint32_t>(
        std::max(1, (*client)->config().max_connections - (*client)->config().reserved_demand_connections));
    engine = std::make_unique<fs::PrefetchEngine>(cache->get(), engine_options);
  }
  fs::PrefetchEngine* prefetch = engine.get();

  fs::FuseServerOptions server_options;
  server_options.on_read = [accesses, prefetch](uint32_t image, uint64_t offset, uint64_t length) {
    accesses->Record(image, offset, length, affinity::profile::AccessOp::kRead);
    if (prefetch != nullptr) prefetch->OnRead(image, offset, length);
  };
  server_options.on_write = [accesses](uint32_t image, uint64_t offset, uint64_t length) {
    accesses->Record(image, offset, length, affinity::profile::AccessOp::kWrite);
  };
  server_options.mountpoint = o.mountpoint;
  server_options.storage_url = o.storage_url;
  server_options.fuse_options = o.fuse_options;
  server_options.timeout = o.timeout;
  server_options.debug = o.debug;
  server_options.control = [grants](const std::string& value) -> Status {
    if (value == "refresh") return grants->RefreshNow();
    return affinity::InvalidArgument("unknown control '" + value + "' (known: refresh)");
  };
  server_options.extra_root_xattrs = [grants, accesses, prefetch] {
    auto out = fs::GrantXattrs(grants->Snapshot());
    for (auto& kv : fs::AccessXattrs(accesses->stats())) out.push_back(std::move(kv));
    for (auto& kv : fs::PrefetchXattrs(prefetch != nullptr ? prefetch->Stats() : fs::PrefetchStats{})) {
      out.push_back(std::move(kv));
    }
    return out;
  };
  auto server = std::make_unique<fs::FuseServer>(cache->get(), server_options);
  Status s = server->Mount();
  if (!s.ok()) {
    reporter.Fail(s);
    return 1;
  }
  (*cache)->Start();
  fs::VmCache* vm_cache = cache->get();
  fs::FuseServer* fuse = server.get();
  fs::GrantKeeperHooks hooks;
  hooks.purge = [vm_cache](const std::string& migration) {
    return vm_cache->PurgeMigration(migration, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  };
  hooks.invalidate = [vm_cache, fuse](const std::vector<fs::StaleImageRange>& stale) -> Status {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (const auto& r : stale) {
      Status s = vm_cache->InvalidateRange(r.image, r.range.offset, r.range.length, deadline);
      if (!s.ok()) return s;
      fuse->InvalidateKernelCache(r.image, r.range.offset, r.range.length);
    }
    return vm_cache->Flush();
  };
  hooks.drop_kernel_cache = [fuse] { fuse->InvalidateAllKernelCaches(); };
  grants->Start(client->get(), &vm_cache->access(), &vm_cache->index(), std::move(hooks));
  accesses->Start(client->get());
  // Before the mount is announced: a migration aborted (or committed) while
  // no daemon ran is applied now, so not one read sees what it must not.
  s = grants->RefreshNow();
  if (!s.ok()) spdlog::warn("first grant check: {}; the keeper retries every {} ms", s.ToString(), o.grant_poll.count());
  if (engine) engine->Start(ProfileLoader(o, client->get()));
  spdlog::info("mounted VM {} from {} on {} ({} images, chunk size {}, cache limit {})", o.vm, o.storage_url,
               o.mountpoint, (*cache)->images().size(), o.chunk_size, o.cache_size);
  reporter.Succeed();
  s = server->Run();
  if (!s.ok()) spdlog::error("{}", s.ToString());
  // Unmounted: write back what is dirty while the grant and the client are
  // still here. Whatever does not make it stays in the cache for the next run.
  if (fs::WriteBack* wb = (*cache)->write_back()) {
    Status flushed = wb->FlushAll(std::chrono::steady_clock::now() + o.timeout);
    uint64_t left = 0;
    for (const auto& image : (*cache)->images()) left += image->dirty_bytes();
    if (!flushed.ok()) {
      spdlog::error("unmount: {} dirty bytes not written back ({}); they stay in {} and are written back by the "
                    "next mount",
                    left, flushed.ToString(), o.cache_dir);
    } else {
      spdlog::info("unmount: every write is on the storage host");
    }
    wb->Stop();  // before the client goes: no PUT may be submitted to it after that
  }
  // Unmount first, then stop fetching (pending callbacks complete as cancelled),
  // then flush and close the cache.
  grants->Stop();  // before the server and the cache it calls into
  if (engine) engine->Stop();
  server.reset();     // no more reads to record
  (*recorder)->Stop();  // persists what is in RAM, tries a last upload
  client->reset();    // pending fetches complete (cancelled) into the cache and the engine
  engine.reset();
  cache->reset();
  spdlog::info("unmounted {}", o.mountpoint);
  return s.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Range bodies are a few MiB each. By default glibc serves such blocks with
  // a fresh mmap and unmaps them on free, so every response page-faults its
  // whole buffer in again; keep them in the heap for reuse instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  auto options = affinity::fs::ParseDaemonOptions(argc, argv);
  if (!options.ok()) {
    if (options.status().code() == StatusCode::kCancelled) {
      std::printf("%s\n", options.status().message().c_str());
      return 0;
    }
    std::fprintf(stderr, "affinityfs: %s\n(try --help)\n", options.status().message().c_str());
    return 2;
  }
  const auto& o = *options;

  int report_fd = -1;
  if (!o.foreground) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      std::perror("affinityfs: pipe");
      return 1;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("affinityfs: fork");
      return 1;
    }
    if (pid > 0) {
      ::close(fds[1]);
      return WaitForChild(fds[0], pid);
    }
    ::close(fds[0]);
    ::setsid();
    if (::chdir("/") != 0) return 1;
    report_fd = fds[1];
  }
  std::string destination = !o.log_file.empty() ? o.log_file : (o.foreground ? "stderr" : "syslog");
  Status s = affinity::InitLogging("affinityfs", o.log_level, destination);
  StartupReporter reporter(report_fd);
  if (!s.ok()) {
    reporter.Fail(s);
    return 1;
  }
  return Serve(o, reporter);
}
