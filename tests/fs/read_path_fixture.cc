#include "tests/fs/read_path_fixture.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "fetcher/https_client.h"

namespace affinity::testing {

ssize_t PreadAll(int fd, void* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, static_cast<char*>(buf) + done, len - done, off + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

void ReadPathTest::SetUp() {
  certs_ = GenerateCerts(dir_ / "certs");
  root_ = dir_ / "root";
  state_ = dir_ / "state";
  cache_ = dir_ / "cache";
  mnt_ = dir_ / "mnt";
  for (const std::string& d : {root_, root_ + "/" + kVm, state_, mnt_}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
  WriteRandomFile(SourcePath("root.raw"), kRootSize, 42);
  WriteRandomFile(SourcePath("data.raw"), kDataSize, 7);
  root_bytes_ = ReadWholeFile(SourcePath("root.raw"));
  data_bytes_ = ReadWholeFile(SourcePath("data.raw"));
  ASSERT_EQ(root_bytes_.size(), kRootSize);
}

void ReadPathTest::TearDown() { server_.reset(); }

void ReadPathTest::StartServer(std::vector<std::string> extra_args, bool other_ca_cert) {
  StoragedOptions o;
  o.root = root_;
  o.state_dir = state_;
  o.certs = &certs_;
  o.extra_args = std::move(extra_args);
  o.use_other_ca_server_cert = other_ca_cert;
  server_ = std::make_unique<StoragedProcess>(o);
  server_->Start();
  if (HasFatalFailure()) throw std::runtime_error("storage host did not start");
}

std::unique_ptr<AffinityfsMount> ReadPathTest::MakeMount(std::vector<std::string> extra_args, std::string grant_file) {
  MountOptions o;
  o.mountpoint = mnt_;
  o.storage_url = server_->url();
  o.vm = kVm;
  o.cache_dir = cache_;
  o.certs = &certs_;
  o.extra_args = std::move(extra_args);
  o.grant_file = std::move(grant_file);
  return std::make_unique<AffinityfsMount>(o);
}

std::unique_ptr<AffinityfsMount> ReadPathTest::Mount(std::vector<std::string> extra_args) {
  auto m = MakeMount(std::move(extra_args));
  m->Start();
  // Start() reports a failed mount as a fatal failure; stop the test here
  // rather than run it against an empty directory (gtest reports the throw).
  if (HasFatalFailure()) throw std::runtime_error("mount failed");
  return m;
}

int ReadPathTest::AdminCall(const std::string& method, const std::string& path, const std::string& json,
                            std::string* body) {
  fetcher::ClientConfig cfg;
  cfg.base_url = server_->url();
  cfg.ca_file = certs_.ca_cert;
  cfg.cert_file = certs_.admin_cert;
  cfg.key_file = certs_.admin_key;
  auto client = fetcher::HttpsClient::Create(cfg);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return -1;
  fetcher::Request req;
  req.method = method;
  req.path = path;
  req.body = json;
  req.idempotent = false;
  if (!json.empty()) req.headers.push_back("Content-Type: application/json");
  req.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto outcome = (*client)->Fetch(req);
  if (body != nullptr) {
    const auto& b = outcome.status.ok() ? outcome.response.body : std::vector<uint8_t>{};
    body->assign(b.begin(), b.end());
    if (!outcome.status.ok()) *body = outcome.status.ToString();
  }
  return outcome.status.ok() ? outcome.response.http_status : outcome.failure.http_status;
}

ReadPathTest::TmpfsGuard::~TmpfsGuard() { ::umount2(path.c_str(), MNT_DETACH); }

std::unique_ptr<ReadPathTest::TmpfsGuard> ReadPathTest::MountTinyCacheDisk() {
  EXPECT_EQ(::mkdir(cache_.c_str(), 0700), 0) << cache_ << ": " << std::strerror(errno);
  if (::mount("tmpfs", cache_.c_str(), "tmpfs", 0, "size=1m") != 0) {
    ADD_FAILURE() << "mount a tmpfs on " << cache_ << ": " << std::strerror(errno);
    return nullptr;
  }
  auto guard = std::make_unique<TmpfsGuard>();  // no temporary guard: its destructor would unmount
  guard->path = cache_;
  return guard;
}

std::string ReadPathTest::OwnerGrantFile() {
  const std::string holder = FingerprintOf(certs_.client_cert);
  std::string body;
  int status = AdminCall("PUT", std::string("/v1/vms/") + kVm + "/owner", nlohmann::json{{"holder", holder}}.dump(), &body);
  EXPECT_EQ(status, 200) << body;
  nlohmann::json request = {{"holder", holder}, {"vm", kVm}, {"ops", {"read", "prefetch", "write"}}, {"ttl", 3600}};
  status = AdminCall("POST", "/v1/grants", request.dump(), &body);
  EXPECT_EQ(status, 200) << body;
  std::string path = dir_ / "owner.grant";
  if (status == 200) WriteGrantFile(path, nlohmann::json::parse(body)["grant"].get<std::string>());
  return path;
}

std::unique_ptr<AffinityfsMount> ReadPathTest::MountWritable(std::vector<std::string> extra_args) {
  auto m = MakeMount(std::move(extra_args), OwnerGrantFile());
  m->Start();
  if (HasFatalFailure()) throw std::runtime_error("mount failed");
  return m;
}

ServedCounters ReadPathTest::Served(const std::string& image) {
  fetcher::ClientConfig cfg;
  cfg.base_url = server_->url();
  cfg.ca_file = certs_.ca_cert;
  cfg.cert_file = certs_.admin_cert;  // metrics are a control-plane endpoint
  cfg.key_file = certs_.admin_key;
  auto client = fetcher::HttpsClient::Create(cfg);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return {};
  fetcher::Request req;
  req.path = "/v1/metrics";
  req.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto outcome = (*client)->Fetch(req);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  if (!outcome.status.ok()) return {};
  auto doc = nlohmann::json::parse(outcome.response.body.begin(), outcome.response.body.end());
  std::string key = std::string(kVm) + "/" + image;
  if (!doc["images"].contains(key)) return {};
  return {doc["images"][key]["requests"].get<uint64_t>(), doc["images"][key]["bytes"].get<uint64_t>()};
}

std::string ReadPathTest::Xattr(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = ::getxattr(path.c_str(), ("user.affinity." + name).c_str(), buf, sizeof buf);
  EXPECT_GE(n, 0) << "getxattr " << name << " on " << path << ": " << std::strerror(errno);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

void ReadPathTest::ReadAt(const std::vector<uint64_t>& offsets) {
  int fd = ::open(MountPath("data.raw").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 4096), 0);
  for (uint64_t off : offsets) {
    ASSERT_EQ(::pread(fd, buf, 4096, static_cast<off_t>(off)), 4096);
    EXPECT_EQ(std::memcmp(buf, data_bytes_.data() + off, 4096), 0) << "offset " << off;
  }
  std::free(buf);
  ::close(fd);
}

}  // namespace affinity::testing
