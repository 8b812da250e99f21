#include <gtest/gtest.h>

#include "storage/api.h"
#include "storage/generation_db.h"
#include "tests/support/test_env.h"

namespace affinity::storage {
namespace {

TEST(DecodePathSegments, DecodesAndSplits) {
  auto s = DecodePathSegments("/v1/vms/vm%2d42/images/a.raw?x=1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<std::string>{"v1", "vms", "vm-42", "images", "a.raw"}));
  // A decoded "/" stays inside its segment, where name validation refuses it.
  EXPECT_EQ(DecodePathSegments("/v1/a%2Fb")->at(1), "a/b");
  EXPECT_EQ(DecodePathSegments("/v1/%2e%2e")->at(1), "..");
  EXPECT_EQ(DecodePathSegments("/v1/vms/")->size(), 2u);
}

TEST(DecodePathSegments, RejectsBadEscapes) {
  for (const char* bad : {"v1/vms", "/v1/%", "/v1/%4", "/v1/%zz", "/v1/%00"}) {
    EXPECT_EQ(DecodePathSegments(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(GenerationDb, StartsAtOneAndBumpsOnlyOnIdentityChange) {
  testing::TempDir dir;
  auto db = GenerationDb::Open(dir.path());
  ASSERT_TRUE(db.ok());
  FileIdentity a{100, 5, 7}, b{100, 6, 7};
  EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
  EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
  EXPECT_EQ(*(*db)->Generation("vm", "x", b), 2u);
  EXPECT_EQ(*(*db)->Generation("vm", "y", b), 1u);
  auto reopened = GenerationDb::Open(dir.path());
  EXPECT_EQ(*(*reopened)->Generation("vm", "x", b), 2u);
  EXPECT_EQ(*(*reopened)->Generation("vm", "x", a), 3u);
}

}  // namespace
}  // namespace affinity::storage
