// affinity-storaged: the storage host daemon (docs/protocol.md).
//
// Signals: SIGTERM/SIGINT stop it gracefully. They are blocked before any
// thread starts and taken with sigwait() on the main thread, so no handler
// runs in the middle of a request.
#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "common/logging.h"
#include "storage/api.h"
#include "storage/generation_db.h"
#include "storage/https_server.h"
#include "storage/metrics.h"
#include "storage/test_faults.h"
#include "storage/volume_store.h"

namespace {

using affinity::Status;

int Fail(const std::string& message) {
  std::fprintf(stderr, "affinity-storaged: %s\n", message.c_str());
  return 1;
}

Status WriteReadyFile(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.good()) return affinity::IoError("cannot write --ready-file " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return affinity::IoError("cannot rename to --ready-file " + path);
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  namespace st = affinity::storage;
  std::string root, listen, cert, key, client_ca, state, ready_file, log_level = "info";
  std::vector<std::string> faults_specs;
  double delay_ms = 0;
  int max_connections = 512;
  CLI::App app{"affinity-storaged: serves VM image directories over mutual-TLS HTTPS"};
  app.set_version_flag("--version", "affinity-storaged 0.1.0");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--root", root, "Directory holding <vm>/<image> files")->required()->check(CLI::ExistingDirectory);
  app.add_option("--listen", listen, "HOST:PORT to listen on (PORT 0: any free port)")->required();
  app.add_option("--tls-cert", cert, "Server certificate chain (PEM)")->required();
  app.add_option("--tls-key", key, "Server private key (PEM)")->required();
  app.add_option("--client-ca", client_ca, "CA whose client certificates are accepted (PEM)")->required();
  app.add_option("--state", state, "State directory (SQLite)")->required();
  app.add_option("--ready-file", ready_file, "Write the bound port here once listening");
  app.add_option("--max-connections", max_connections, "Open connections at most")->check(CLI::Range(1, 100000));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--test-fault", faults_specs, "TEST ONLY: inject a fault (corrupt-body:N)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--test-delay-ms", delay_ms, "TEST ONLY: delay every data request (emulated RTT)")
      ->check(CLI::Range(0.0, 10000.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  Status s = affinity::InitLogging("affinity-storaged", log_level);
  if (!s.ok()) return Fail(s.message());

  st::ServerOptions server_options;
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return Fail("--listen must be HOST:PORT (got '" + listen + "')");
  server_options.host = listen.substr(0, colon);
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    server_options.port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    return Fail("--listen port must be 0..65535 (got '" + listen.substr(colon + 1) + "')");
  }
  server_options.cert_file = cert;
  server_options.key_file = key;
  server_options.client_ca_file = client_ca;
  server_options.max_connections = max_connections;

  st::TestFaults faults;
  for (const auto& spec : faults_specs) {
    s = faults.Add(spec);
    if (!s.ok()) return Fail(s.message());
  }
  faults.set_delay(std::chrono::microseconds(static_cast<int64_t>(delay_ms * 1000)));
  if (faults.any()) spdlog::warn("TEST FAULTS ARE ON (--test-fault / --test-delay-ms): not for production use");

  auto generations = st::GenerationDb::Open(state);
  if (!generations.ok()) return Fail(generations.status().ToString());
  auto store = st::VolumeStore::Open(root, generations->get());
  if (!store.ok()) return Fail(store.status().ToString());
  st::Metrics metrics;
  st::Api api(store->get(), &metrics, &faults);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = st::HttpsServer::Create(server_options, &api, &faults);
  if (!server.ok()) return Fail(server.status().ToString());
  (*server)->Start();
  spdlog::info("serving {} on https://{}:{}", root, server_options.host, (*server)->port());
  if (!ready_file.empty()) {
    s = WriteReadyFile(ready_file, (*server)->port());
    if (!s.ok()) return Fail(s.message());
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*server)->Stop();
  return 0;
}
