// What checking a grant costs the storage host per data request:
//   BM_VerifyGrantSignature  the full check of acl::VerifyGrant (Ed25519 + JSON)
//   BM_AuthorizeRequest      Authorizer::Authorize as a data request sees it:
//                            the verified-token memo, time window, holder,
//                            revocation, epoch and scope.
// The ratio of the two is the memo's gain (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>

#include "acl/grant_token.h"
#include "storage/authorizer.h"
#include "storage/migration_registry.h"

namespace {

using namespace affinity;

const std::string kHolder(64, 'a');

acl::GrantClaims Claims() {
  acl::GrantClaims c;
  c.grant_id = acl::NewGrantId();
  c.issuer = "bench";
  c.holder = kHolder;
  c.vm = "vm-1";
  c.images = {"*"};
  c.ops = static_cast<uint8_t>(acl::Operation::kRead);
  c.issued_at = c.not_before = static_cast<int64_t>(std::time(nullptr));
  c.expires = c.not_before + 3600;
  c.epoch = 1;
  return c;
}

void BM_VerifyGrantSignature(benchmark::State& state) {
  auto key = acl::SigningKey::Generate().value();
  std::string token = acl::SignGrant(key, Claims()).value();
  acl::VerifyOptions o;
  o.key = &key.verifying_key();
  o.issuer = "bench";
  o.now = static_cast<int64_t>(std::time(nullptr));
  for (auto _ : state) benchmark::DoNotOptimize(acl::VerifyGrant(token, o));
}
BENCHMARK(BM_VerifyGrantSignature);

void BM_AuthorizeRequest(benchmark::State& state) {
  auto key = acl::SigningKey::Generate().value();
  std::string dir = std::filesystem::temp_directory_path() / ("grant-bench-" + std::to_string(::getpid()));
  auto registry = storage::MigrationRegistry::Open(dir).value();
  storage::Authorizer authorizer(&key.verifying_key(), "bench", registry.get());
  storage::PeerIdentity peer;
  peer.fingerprint = kHolder;
  std::optional<std::string> auth = "Bearer " + acl::SignGrant(key, Claims()).value();
  for (auto _ : state) {
    benchmark::DoNotOptimize(authorizer.Authorize(peer, auth, "vm-1", "root.raw", acl::Operation::kRead));
  }
  registry.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AuthorizeRequest);

}  // namespace

BENCHMARK_MAIN();
