// Test environment helpers shared by the integration tests: private temp
// dirs, certificates made with the openssl CLI at test time, child processes
// that are always killed, and a real affinity-storaged on a loopback port.
//
// Nothing here is a fake: the certificates are real X.509, the server is the
// real binary. Every helper cleans up in its destructor, so a failing test
// leaves no process or directory behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace affinity::testing {

// Absolute path of a built binary: "affinity-storaged", "affinityfs", "affinityctl".
std::string BinaryPath(const std::string& name);

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// PEM files in `dir`. The "other" CA is unrelated to the main one: its client
// certificate must be refused by the server, its server certificate by clients.
struct Certs {
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;        // CN=storage, SAN IP:127.0.0.1, DNS:localhost
  std::string client_cert, client_key;        // CN=dest-host, signed by the main CA
  std::string client2_cert, client2_key;      // CN=other-host, signed by the main CA
  std::string other_ca_cert, other_ca_key;
  std::string other_client_cert, other_client_key;  // signed by the other CA
  std::string other_server_cert, other_server_key;  // signed by the other CA
  std::string admin_ca_cert, admin_ca_key;           // the separate CA of admin certificates
  std::string admin_cert, admin_key;                 // CN=operator, signed by the admin CA
  std::string grant_key, grant_pub;                  // Ed25519 grant-signing key pair
};
// Generates all of the above (EC P-256) with the openssl CLI; aborts the test on failure.
Certs GenerateCerts(const std::string& dir);

// What a test grant says; signed locally with Certs::grant_key (the same key
// the storage host signs with), so a test can also make grants the storage
// host would never issue (for refusal tests).
struct GrantSpec {
  std::string holder_cert;  // PEM certificate whose key fingerprint is the holder
  std::string vm;
  std::vector<std::string> images = {"*"};
  std::string ops = "read,prefetch";
  int64_t ttl_seconds = 600;
  int64_t not_before_offset = 0;  // seconds relative to now
  uint64_t epoch = 1;
  std::string migration;
  std::string issuer = "affinity-storaged";
};
std::string MintGrant(const Certs& certs, const GrantSpec& spec);
// Writes a grant token to `path` (what affinityfs --grant reads).
void WriteGrantFile(const std::string& path, const std::string& token);
// HolderFingerprint of a certificate file (ASSERTs it can be read).
std::string FingerprintOf(const std::string& cert_file);

// Writes `size` pseudo-random (seeded, incompressible) bytes to `path`.
void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed);
std::string ReadWholeFile(const std::string& path);

// A child process; killed with SIGKILL (then reaped) on destruction if still running.
class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // stdout+stderr go to `log_file`. Returns false if fork/exec failed.
  bool Start(const std::vector<std::string>& argv, const std::string& log_file);
  void Signal(int sig);
  // Waits up to `timeout`; returns the exit status (WEXITSTATUS, or 128+signal), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

struct StoragedOptions {
  std::string root;        // ROOT/<vm>/<image>
  std::string state_dir;
  const Certs* certs = nullptr;
  uint16_t port = 0;       // 0: pick a free one (the server reports it)
  std::vector<std::string> extra_args;  // e.g. {"--test-fault", "corrupt-body:1"}
  bool use_other_ca_server_cert = false;  // serve a certificate clients must reject
};

// A real affinity-storaged on 127.0.0.1. Start() waits until it listens.
class StoragedProcess {
 public:
  explicit StoragedProcess(StoragedOptions options);
  ~StoragedProcess();  // SIGKILL if still running

  void Start();             // ASSERTs (fatal) on failure; reuses the last port on restart
  void Stop();              // SIGTERM, wait
  void Kill();              // SIGKILL, wait
  uint16_t port() const { return port_; }
  std::string url() const;  // "https://127.0.0.1:<port>"
  std::string log() const;  // the server's log so far (for failure messages)

 private:
  StoragedOptions options_;
  uint16_t port_ = 0;
  int starts_ = 0;
  Subprocess process_;
  std::string log_file_;
};

}  // namespace affinity::testing
