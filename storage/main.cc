// affinity-storaged: the storage host daemon (docs/protocol.md).
//
// Start-up order: parse flags -> logging -> state db -> volume store ->
// migration registry + chunk tracker -> grant key -> client roles -> TLS + bind -> I/O threads -> --ready-file. Any failure before serving
// prints one line "affinity-storaged: <what>" to stderr and exits 1 (bad
// flags: CLI11's message, exit code 1 or more).
//
// Signals: SIGTERM/SIGINT stop it gracefully (exit 0). They are blocked
// before any thread starts and taken with sigwait() on the main thread, so no
// handler ever runs in the middle of a request.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/logging.h"
#include "acl/signing_key.h"
#include "storage/api_router.h"
#include "storage/client_roles.h"
#include "storage/guest_catalog.h"
#include "storage/https_server.h"
#include "storage/listen_address.h"
#include "storage/metrics.h"
#include "storage/range_handler.h"
#include "storage/served_log.h"
#include "storage/state_db.h"
#include "storage/test_faults.h"
#include "storage/volume_store.h"

namespace {

using affinity::Status;

int Fail(const std::string& message) {
  std::fprintf(stderr, "affinity-storaged: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  namespace st = affinity::storage;
  std::string root, listen, state_dir, ready_file, log_level = "info";
  st::ServerOptions server;
  std::vector<std::string> fault_specs;
  double delay_ms = 0;
  uint64_t bandwidth = 0;
  int idle_timeout_s = 60;
  std::string grant_key_file, issuer_name = "affinity-storaged";
  int64_t max_grant_ttl = st::GrantIssuer::kDefaultMaxTtlSeconds;

  CLI::App app{"affinity-storaged: serves ROOT/<vm>/<image> over mutual-TLS HTTPS (docs/protocol.md)"};
  app.set_version_flag("--version", "affinity-storaged " + std::string(st::kStoragedVersion));
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--root", root, "Directory holding <vm>/<image> files")->required()->check(CLI::ExistingDirectory);
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free one (see --ready-file)")->required();
  app.add_option("--tls-cert", server.tls.cert_file, "Server certificate chain (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", server.tls.key_file, "Private key of --tls-cert (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--client-ca", server.tls.client_ca_file, "CA whose client certificates are accepted (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--admin-ca", server.tls.admin_ca_file,
                 "CA of admin client certificates (control plane: migrations, grants, owners); not --client-ca")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--grant-key", grant_key_file, "Ed25519 private key that signs grants (affinityctl keygen)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--grant-issuer", issuer_name, "Issuer name written into and required of every grant")
      ->capture_default_str();
  app.add_option("--max-grant-ttl", max_grant_ttl, "Longest grant lifetime, seconds (clients renew)")
      ->check(CLI::Range(10, 7 * 24 * 3600))
      ->capture_default_str();
  app.add_option("--state", state_dir,
                 "State directory (image generations, owners, migrations, tracking); created if missing")
      ->required();
  app.add_option("--threads", server.threads, "I/O threads")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--max-connections", server.max_connections, "Open connections at most")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--idle-timeout", idle_timeout_s, "Seconds a connection may sit idle (also bounds the handshake)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "Log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--ready-file", ready_file, "Once listening, write the bound port here (atomically)");
  std::vector<std::string> signature_dirs;
  bool no_signatures = false;
  app.add_option("--signatures", signature_dirs,
                 "Directory of application signatures (docs/signatures.md), added after the shipped ones; "
                 "repeatable, later ones override an application of the same name")
      ->check(CLI::ExistingDirectory);
  app.add_flag("--no-signatures", no_signatures,
               "No guest inspection and no application signatures: profiles from history only");
  app.add_option("--test-delay-ms", delay_ms, "TEST ONLY: hold every image reply D ms, e.g. 0.5 (emulated round trip)")
      ->check(CLI::Range(0.0, 60000.0));
  app.add_option("--test-bandwidth", bandwidth,
                 "TEST ONLY: image replies share a link of this many bytes/s, e.g. 125M = 1 Gbit/s (emulated cap)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--test-fault", fault_specs, "TEST ONLY: inject a fault: corrupt-body:N")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  auto address = st::ParseListenAddress(listen);
  if (!address.ok()) return Fail(address.status().message());
  server.listen = *address;
  server.idle_timeout = std::chrono::seconds(idle_timeout_s);

  st::TestFaults faults;
  for (const std::string& spec : fault_specs) {
    Status s = faults.Add(spec);
    if (!s.ok()) return Fail(s.message());
  }
  faults.set_delay(std::chrono::microseconds(static_cast<int64_t>(delay_ms * 1000)));
  faults.set_bandwidth(bandwidth);

  Status s = affinity::InitLogging("affinity-storaged", log_level);
  if (!s.ok()) return Fail(s.message());
  if (faults.any()) {
    spdlog::warn("TEST FAULTS ARE ON (--test-fault {} / --test-delay-ms {} / --test-bandwidth {}): never use this in "
                 "production",
                 fault_specs.empty() ? "-" : fault_specs.front(), delay_ms, bandwidth);
  }

  auto state = st::StateDb::Open(state_dir);
  if (!state.ok()) return Fail(state.status().ToString());
  auto store = st::VolumeStore::Open(root, state->get());
  if (!store.ok()) return Fail(store.status().ToString());
  auto registry = st::MigrationRegistry::Open(state_dir);
  if (!registry.ok()) return Fail(registry.status().ToString());
  auto tracker = st::ChunkTracker::Open(state_dir);
  if (!tracker.ok()) return Fail(tracker.status().ToString());
  auto access_log = st::AccessLog::Open(state_dir);
  if (!access_log.ok()) return Fail(access_log.status().ToString());
  auto grant_key = affinity::acl::SigningKey::LoadPem(grant_key_file);
  if (!grant_key.ok()) return Fail("--grant-key: " + grant_key.status().message());
  auto roles = st::ClientRoles::Load(server.tls.admin_ca_file, server.tls.client_ca_file);
  if (!roles.ok()) return Fail(roles.status().message());
  st::Metrics metrics;
  st::VmWriteLocks write_locks;
  st::ServedLog served(access_log->get());
  st::RangeHandler ranges(store->get(), &metrics, &faults, tracker->get());
  ranges.set_served_log(&served);
  st::GrantIssuer issuer(&*grant_key, issuer_name, registry->get(), max_grant_ttl);
  st::Authorizer authorizer(&grant_key->verifying_key(), issuer_name, registry->get());
  st::ApiServices services;
  services.store = store->get();
  services.metrics = &metrics;
  services.ranges = &ranges;
  services.authorizer = &authorizer;
  services.issuer = &issuer;
  services.registry = registry->get();
  services.tracker = tracker->get();
  services.write_locks = &write_locks;
  services.access_log = access_log->get();
  std::unique_ptr<st::GuestCatalog> guests;
  if (!no_signatures) {
    signature_dirs.insert(signature_dirs.begin(), affinity::profile::ShippedSignatureDir());
    auto catalog = st::GuestCatalog::Open(state_dir, store->get(), signature_dirs);
    if (!catalog.ok()) return Fail(catalog.status().ToString());
    guests = std::move(*catalog);
    services.guests = guests.get();
  }
  st::ApiRouter router(services);

  // Before any thread exists: stop signals are taken by sigwait() below only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  served.Start();
  if (guests) guests->StartWarmup();

  auto https = st::HttpsServer::Create(server, &router, roles->get());
  if (!https.ok()) return Fail(https.status().message());
  (*https)->Start();
  spdlog::info("affinity-storaged {} serving {} on https://{}:{} ({} I/O threads, client CA {}, admin CA {}, "
               "grants by '{}' with key {})",
               st::kStoragedVersion, root, server.listen.host, (*https)->port(), server.threads,
               server.tls.client_ca_file, server.tls.admin_ca_file, issuer_name, grant_key->key_id());
  if (!ready_file.empty()) {
    s = affinity::WriteFileAtomically(ready_file, std::to_string((*https)->port()) + "\n", 0644);
    if (!s.ok()) {
      (*https)->Stop();
      return Fail("--ready-file: " + s.message());
    }
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("{}: stopping", ::strsignal(sig));
  (*https)->Stop();
  served.Stop();  // what was served last reaches profile.sqlite
  spdlog::info("stopped");
  return 0;
}
