// The access batch format: round trip, and every malformed batch a client
// could send is refused with the field named.
#include <gtest/gtest.h>

#include "profile/access_batch.h"

namespace affinity::profile {
namespace {

AccessBatch Sample() {
  AccessBatch b;
  b.session = NewSessionId();
  b.session_start_ms = 1795530591000;
  b.records = {{0, "root.raw", 0, 4096, AccessOp::kRead, 12}, {1, "data.raw", 1 << 20, 65536, AccessOp::kWrite, 900}};
  return b;
}

TEST(AccessBatchTest, RoundTrips) {
  AccessBatch b = Sample();
  auto back = DecodeAccessBatch(EncodeAccessBatch(b));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, b);
  EXPECT_NE(NewSessionId(), NewSessionId());
  EXPECT_EQ(NewSessionId().size(), 26u);
}

TEST(AccessBatchTest, MalformedBatchesAreRefusedNamingTheField) {
  const std::string s = R"("session":"s-1","session_start_ms":5)";
  const std::pair<std::string, std::string> cases[] = {
      {"[]", "not a JSON object"},
      {"{", "not a JSON object"},
      {R"({"session_start_ms":5,"records":[]})", "'session'"},
      {R"({"session":"x-1","session_start_ms":5,"records":[]})", "'session'"},
      {R"({"session":"s-1/..","session_start_ms":5,"records":[]})", "'session'"},
      {R"({"session":"s-1","session_start_ms":-5,"records":[]})", "'session_start_ms'"},
      {"{" + s + "}", "'records'"},
      {"{" + s + R"(,"records":[[0,"a.raw",0,1,"R"]]})", "record 0"},
      {"{" + s + R"(,"records":[[0,"../a",0,1,"R",0]]})", "record 0"},
      {"{" + s + R"(,"records":[[0,"a.raw",0,0,"R",0]]})", "out of range"},
      {"{" + s + R"(,"records":[[0,"a.raw",-1,1,"R",0]]})", "non-negative"},
      {"{" + s + R"(,"records":[[0,"a.raw",0,1,"X",0]]})", "op must be"},
      {"{" + s + R"(,"records":[[0,"a.raw",0,1.5,"R",0]]})", "non-negative integer"},
      {"{" + s + R"(,"records":[[0,"a.raw",1152921504606846977,1,"R",0]]})", "out of range"},
  };
  for (const auto& [text, want] : cases) {
    auto r = DecodeAccessBatch(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << text << " -> " << r.status().message();
  }
  std::string many = "{" + s + R"(,"records":[)";
  for (size_t i = 0; i <= kMaxRecordsPerBatch; ++i) many += std::string(i ? "," : "") + R"([0,"a.raw",0,1,"R",0])";
  many += "]}";
  auto r = DecodeAccessBatch(many);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at most"), std::string::npos);
}

}  // namespace
}  // namespace affinity::profile
