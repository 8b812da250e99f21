#include <gtest/gtest.h>

#include "common/byte_range.h"
#include "common/digest.h"
#include "common/names.h"
#include "common/status.h"

namespace affinity {
namespace {

TEST(ByteRange, ParsesClosedOpenAndSuffixRanges) {
  auto r = ParseRangeHeader("bytes=10-19", 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (ByteRange{10, 10}));
  EXPECT_EQ(*ParseRangeHeader("bytes=90-", 100), (ByteRange{90, 10}));
  EXPECT_EQ(*ParseRangeHeader("bytes=-5", 100), (ByteRange{95, 5}));
  EXPECT_EQ(*ParseRangeHeader("bytes=-500", 100), (ByteRange{0, 100}));
  EXPECT_EQ(*ParseRangeHeader("bytes=50-5000", 100), (ByteRange{50, 50}));  // clamped, RFC 9110 14.1.2
}

TEST(ByteRange, RejectsMalformedAndUnsatisfiable) {
  EXPECT_EQ(ParseRangeHeader("items=0-1", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=0-1,5-6", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=9-3", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=x-3", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=-", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=99999999999999999999-", 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRangeHeader("bytes=100-", 100).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ParseRangeHeader("bytes=0-", 0).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ParseRangeHeader("bytes=-0", 100).status().code(), StatusCode::kOutOfRange);
}

TEST(ByteRange, ContentRangeRoundTrips) {
  ByteRange r{4096, 8192};
  EXPECT_EQ(FormatContentRange(r, 1 << 20), "bytes 4096-12287/1048576");
  EXPECT_EQ(FormatRangeHeader(r), "bytes=4096-12287");
  EXPECT_EQ(*ParseContentRange(FormatContentRange(r, 1 << 20)), r);
  EXPECT_FALSE(ParseContentRange("bytes 5-4/10").ok());
  EXPECT_FALSE(ParseContentRange("bytes */10").ok());
}

TEST(Digest, ContentDigestMatchesRfc9530Example) {
  // RFC 9530 appendix: sha-256 of {"hello": "world"} followed by a newline.
  std::string body = "{\"hello\": \"world\"}\n";
  EXPECT_EQ(ContentDigestValue(Sha256(body)), "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:");
  auto parsed = ParseContentDigest("sha-512=:abc=:, sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Sha256(body));
}

TEST(Digest, StreamingEqualsOneShot) {
  Sha256Hasher h;
  h.Update("hello ");
  h.Update("world");
  EXPECT_EQ(h.Final(), Sha256("hello world"));
}

TEST(Digest, RejectsMalformedContentDigest) {
  EXPECT_EQ(ParseContentDigest("sha-512=:abc=:").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParseContentDigest("sha-256").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseContentDigest("sha-256=abc").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseContentDigest("sha-256=:short=:").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseContentDigest("sha-256=:!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=:").status().code(),
            StatusCode::kCorruption);
}

TEST(Digest, ChunkDigestDetectsOneFlippedBit) {
  std::vector<uint8_t> data(65536, 7);
  ChunkDigest a = ComputeChunkDigest(data);
  data[12345] ^= 1;
  EXPECT_NE(a, ComputeChunkDigest(data));
  EXPECT_EQ(ToHex(std::vector<uint8_t>{0x01, 0xab}), "01ab");
}

TEST(Names, AcceptsPlainNamesAndRejectsEscapes) {
  EXPECT_TRUE(ValidateName("vm", "vm-42").ok());
  EXPECT_TRUE(ValidateName("image", "root.qcow2").ok());
  for (const char* bad : {"", ".", "..", "../etc", "a/b", "/abs", ".hidden", "sp ace", "nul\x01"}) {
    EXPECT_EQ(ValidateName("vm", bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ValidateName("vm", std::string(256, 'a')).code(), StatusCode::kInvalidArgument);
}

TEST(Status, MapsErrnoAndKeepsContext) {
  Status s = ErrnoStatus(ENOSPC, "pwrite cache");
  EXPECT_EQ(s.code(), StatusCode::kNoSpace);
  EXPECT_EQ(s.ToErrno(), ENOSPC);
  Status c = s.WithContext("store chunk 3");
  EXPECT_EQ(c.code(), StatusCode::kNoSpace);
  EXPECT_NE(c.message().find("store chunk 3: pwrite cache"), std::string::npos);
  EXPECT_EQ(Timeout("x").ToErrno(), EIO);
  EXPECT_EQ(PermissionDenied("x").ToErrno(), EACCES);
}

}  // namespace
}  // namespace affinity
