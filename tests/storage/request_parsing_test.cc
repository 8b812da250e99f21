// Pure parsing pieces of the storage host: request paths, --listen, test faults.
#include <gtest/gtest.h>

#include "storage/listen_address.h"
#include "storage/request_path.h"
#include "storage/test_faults.h"

namespace affinity::storage {
namespace {

using Segments = std::vector<std::string>;

TEST(DecodePathSegments, DecodesEachSegmentAndDropsTheQuery) {
  auto s = DecodePathSegments("/v1/vms/vm%2d42/images/a.raw?x=1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (Segments{"v1", "vms", "vm-42", "images", "a.raw"}));
  EXPECT_EQ(*DecodePathSegments("/v1/vms/"), (Segments{"v1", "vms"}));
  EXPECT_EQ(*DecodePathSegments("/"), (Segments{""}));
}

TEST(DecodePathSegments, TraversalStaysInsideOneSegmentForValidationToRefuse) {
  // Decoding comes first: "%2e%2e" is "..", and a decoded "/" does not split.
  EXPECT_EQ(DecodePathSegments("/v1/%2e%2e")->at(1), "..");
  EXPECT_EQ(DecodePathSegments("/v1/%2E%2e%2Fetc%2fpasswd")->at(1), "../etc/passwd");
  EXPECT_EQ(DecodePathSegments("/v1/a%2Fb")->size(), 2u);
  // Empty segments are kept, so "//etc" cannot collapse into a name.
  EXPECT_EQ(*DecodePathSegments("/v1/vms//etc/images"), (Segments{"v1", "vms", "", "etc", "images"}));
}

TEST(DecodePathSegments, RejectsBadTargetsAndEscapes) {
  for (const char* bad :
       {"", "v1/vms", "https://h/v1/vms", "*", "/v1/%", "/v1/%4", "/v1/%zz", "/v1/%g0", "/v1/%00", "/v1/a%"}) {
    auto s = DecodePathSegments(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseListenAddress, AcceptsV4V6AndPortZero) {
  auto a = ParseListenAddress("127.0.0.1:8443");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8443);
  EXPECT_EQ(ParseListenAddress("0.0.0.0:0")->port, 0);
  EXPECT_EQ(ParseListenAddress("[::1]:65535")->host, "::1");
}

TEST(ParseListenAddress, RejectsWithAMessageNamingTheForm) {
  for (const char* bad : {"nonsense", ":80", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:8x", "::1:80",
                          "[::1:80", "[]:80"}) {
    auto a = ParseListenAddress(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_NE(a.status().message().find("--listen"), std::string::npos) << a.status().message();
  }
  EXPECT_NE(ParseListenAddress("nonsense").status().message().find("HOST:PORT"), std::string::npos);
  EXPECT_NE(ParseListenAddress("127.0.0.1:99999").status().message().find("port"), std::string::npos);
}

TEST(TestFaults, CorruptBodyCountsDownExactly) {
  TestFaults f;
  EXPECT_FALSE(f.any());
  ASSERT_TRUE(f.Add("corrupt-body:2").ok());
  EXPECT_TRUE(f.any());
  EXPECT_TRUE(f.TakeCorruption());
  EXPECT_TRUE(f.TakeCorruption());
  EXPECT_FALSE(f.TakeCorruption());
  EXPECT_FALSE(f.any());
  for (const char* bad : {"corrupt-body:", "corrupt-body:-1", "corrupt-body:x", "explode", ""}) {
    Status s = f.Add(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("test-fault"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace affinity::storage
