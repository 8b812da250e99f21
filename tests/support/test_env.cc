#include "tests/support/test_env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "acl/grant_token.h"
#include "acl/holder_fingerprint.h"

namespace affinity::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Run(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace

std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("AFFINITY_BIN_DIR");
  return std::string(dir != nullptr ? dir : AFFINITY_DEFAULT_BIN_DIR) + "/" + name;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/affinity-test.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* p = ::mkdtemp(buf.data());
  if (p == nullptr) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Certs GenerateCerts(const std::string& dir) {
  std::filesystem::create_directories(dir);
  Certs c;
  auto p = [&](const std::string& n) { return dir + "/" + n; };
  c.ca_cert = p("ca.pem");
  c.ca_key = p("ca.key");
  c.other_ca_cert = p("other-ca.pem");
  c.other_ca_key = p("other-ca.key");
  c.server_cert = p("server.pem");
  c.server_key = p("server.key");
  c.client_cert = p("client.pem");
  c.client_key = p("client.key");
  c.client2_cert = p("client2.pem");
  c.client2_key = p("client2.key");
  c.other_client_cert = p("other-client.pem");
  c.other_client_key = p("other-client.key");
  c.other_server_cert = p("other-server.pem");
  c.other_server_key = p("other-server.key");
  c.admin_ca_cert = p("admin-ca.pem");
  c.admin_ca_key = p("admin-ca.key");
  c.admin_cert = p("admin.pem");
  c.admin_key = p("admin.key");
  c.grant_key = p("grant.key");
  c.grant_pub = p("grant.pub");
  const std::string quiet = " >>'" + p("openssl.log") + "' 2>&1";
  // One openssl process per certificate (OpenSSL 3 `req -x509 -CA` signs
  // directly), so the whole set takes well under a second.
  auto ca = [&](const std::string& cert, const std::string& key, const std::string& cn) {
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=" + cn +
               "' -keyout '" + key + "' -out '" + cert + "'" + quiet);
  };
  auto leaf = [&](const std::string& cert, const std::string& key, const std::string& cn, const std::string& ca_cert,
                  const std::string& ca_key, bool server) {
    std::string ext = server ? " -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost'"
                               " -addext 'extendedKeyUsage=serverAuth'"
                             : " -addext 'extendedKeyUsage=clientAuth'";
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=" + cn +
               "' -keyout '" + key + "' -out '" + cert + "' -CA '" + ca_cert + "' -CAkey '" + ca_key +
               "' -addext 'basicConstraints=critical,CA:FALSE'" + ext + quiet);
  };
  bool ok = ca(c.ca_cert, c.ca_key, "affinity-test-ca") == 0 &&
            ca(c.other_ca_cert, c.other_ca_key, "unrelated-ca") == 0 &&
            leaf(c.server_cert, c.server_key, "storage", c.ca_cert, c.ca_key, true) == 0 &&
            leaf(c.client_cert, c.client_key, "dest-host", c.ca_cert, c.ca_key, false) == 0 &&
            leaf(c.client2_cert, c.client2_key, "other-host", c.ca_cert, c.ca_key, false) == 0 &&
            leaf(c.other_client_cert, c.other_client_key, "stranger", c.other_ca_cert, c.other_ca_key, false) == 0 &&
            leaf(c.other_server_cert, c.other_server_key, "impostor", c.other_ca_cert, c.other_ca_key, true) == 0 &&
            ca(c.admin_ca_cert, c.admin_ca_key, "affinity-admin-ca") == 0 &&
            leaf(c.admin_cert, c.admin_key, "operator", c.admin_ca_cert, c.admin_ca_key, false) == 0 &&
            Run("openssl genpkey -algorithm ed25519 -out '" + c.grant_key + "'" + quiet) == 0 &&
            Run("openssl pkey -in '" + c.grant_key + "' -pubout -out '" + c.grant_pub + "'" + quiet) == 0;
  EXPECT_TRUE(ok) << "openssl failed:\n" << Slurp(p("openssl.log"));
  return c;
}

std::string FingerprintOf(const std::string& cert_file) {
  auto fp = acl::HolderFingerprintOfFile(cert_file);
  EXPECT_TRUE(fp.ok()) << fp.status().ToString();
  return fp.ok() ? *fp : std::string(64, '0');
}

std::string MintGrant(const Certs& certs, const GrantSpec& spec) {
  auto key = acl::SigningKey::LoadPem(certs.grant_key);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  if (!key.ok()) return {};
  acl::GrantClaims c;
  c.grant_id = acl::NewGrantId();
  c.issuer = spec.issuer;
  c.holder = FingerprintOf(spec.holder_cert);
  c.vm = spec.vm;
  c.images = spec.images;
  auto ops = acl::ParseOperationList(spec.ops);
  EXPECT_TRUE(ops.ok()) << spec.ops;
  c.ops = ops.ok() ? *ops : 1;
  c.migration = spec.migration;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  c.issued_at = now;
  c.not_before = now + spec.not_before_offset;
  c.expires = c.not_before + spec.ttl_seconds;
  c.epoch = spec.epoch;
  auto token = acl::SignGrant(*key, c);
  EXPECT_TRUE(token.ok()) << token.status().ToString();
  return token.ok() ? *token : std::string();
}

void WriteGrantFile(const std::string& path, const std::string& token) {
  std::ofstream out(path, std::ios::trunc);
  out << token << "\n";
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> block(8192);
  uint64_t left = size;
  while (left > 0) {
    for (auto& w : block) w = rng();
    uint64_t n = std::min<uint64_t>(left, block.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
  ASSERT_TRUE(out.good()) << "writing " << path;
}

std::string ReadWholeFile(const std::string& path) { return Slurp(path); }

Subprocess::~Subprocess() {
  if (running()) {
    Signal(SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

bool Subprocess::Start(const std::vector<std::string>& argv, const std::string& log_file) {
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return false;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return false;
  }
  if (pid == 0) {
    ::dup2(log, 1);
    ::dup2(log, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    // Only async-signal-safe calls between fork and exec (the test is multi-threaded).
    ::close_range(3, ~0U, 0);  // no test socket or pipe leaks into the child
    ::execv(args[0], args.data());
    static const char kMsg[] = "exec failed\n";
    ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(log);
  pid_ = pid;
  return true;
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0) {
      pid_ = -1;
      return -1;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool Subprocess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  pid_ = -1;
  return false;
}

StoragedProcess::StoragedProcess(StoragedOptions options) : options_(std::move(options)) {}

StoragedProcess::~StoragedProcess() {
  if (process_.running()) {
    process_.Signal(SIGKILL);
    process_.Wait(std::chrono::seconds(10));
  }
}

std::string StoragedProcess::url() const { return "https://127.0.0.1:" + std::to_string(port_); }

std::string StoragedProcess::log() const { return Slurp(log_file_); }

void StoragedProcess::Start() {
  ASSERT_NE(options_.certs, nullptr);
  ASSERT_FALSE(process_.running()) << "affinity-storaged is already running";
  const Certs& c = *options_.certs;
  ++starts_;
  log_file_ = options_.state_dir + "/storaged." + std::to_string(starts_) + ".log";
  std::string ready = options_.state_dir + "/ready." + std::to_string(starts_);
  uint16_t port = port_ != 0 ? port_ : options_.port;
  const bool other = options_.use_other_ca_server_cert;
  std::vector<std::string> argv = {BinaryPath("affinity-storaged")};
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--root", options_.root},
                                                        {"--state", options_.state_dir},
                                                        {"--listen", "127.0.0.1:" + std::to_string(port)},
                                                        {"--ready-file", ready},
                                                        {"--tls-cert", other ? c.other_server_cert : c.server_cert},
                                                        {"--tls-key", other ? c.other_server_key : c.server_key},
                                                        {"--client-ca", c.ca_cert},
                                                        {"--admin-ca", c.admin_ca_cert},
                                                        {"--grant-key", c.grant_key},
                                                        {"--log-level", "debug"}}) {
    argv.push_back(flag);
    argv.push_back(value);
  }
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  ::unlink(ready.c_str());
  ASSERT_TRUE(process_.Start(argv, log_file_)) << "cannot start " << argv[0];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::string text = Slurp(ready);
    if (!text.empty()) {
      port_ = static_cast<uint16_t>(std::stoi(text));
      return;
    }
    if (!process_.running()) FAIL() << "affinity-storaged exited during start-up:\n" << log();
    if (std::chrono::steady_clock::now() > deadline) FAIL() << "affinity-storaged not ready in 10 s:\n" << log();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void StoragedProcess::Stop() {
  process_.Signal(SIGTERM);
  EXPECT_EQ(process_.Wait(std::chrono::seconds(15)), 0) << "storaged did not stop cleanly:\n" << log();
}

void StoragedProcess::Kill() {
  process_.Signal(SIGKILL);
  process_.Wait(std::chrono::seconds(10));
}

}  // namespace affinity::testing
