#include <gtest/gtest.h>

#include "common/digest.h"
#include "fetcher/attempt_check.h"
#include "fetcher/request_queue.h"
#include "fetcher/retry_policy.h"

namespace affinity::fetcher {
namespace {

using std::chrono::milliseconds;

TEST(RetryPolicy, BackoffGrowsExponentiallyWithinTheCap) {
  RetryPolicy p(milliseconds(50), milliseconds(2000), 1234);
  EXPECT_EQ(p.CeilingAfter(1), milliseconds(50));
  EXPECT_EQ(p.CeilingAfter(2), milliseconds(100));
  EXPECT_EQ(p.CeilingAfter(5), milliseconds(800));
  EXPECT_EQ(p.CeilingAfter(7), milliseconds(2000));
  EXPECT_EQ(p.CeilingAfter(100), milliseconds(2000));
  int64_t total = 0;
  for (int i = 0; i < 1000; ++i) {
    auto b = p.BackoffAfter(3);
    ASSERT_GE(b.count(), 0);
    ASSERT_LE(b, milliseconds(200));
    total += b.count();
  }
  // Full jitter: uniform over [0, 200] averages about 100.
  EXPECT_GT(total / 1000, 80);
  EXPECT_LT(total / 1000, 120);
}

TEST(RetryPolicy, SameSeedSameSequence) {
  RetryPolicy a(milliseconds(10), milliseconds(1000), 99), b(milliseconds(10), milliseconds(1000), 99);
  for (int i = 1; i < 10; ++i) EXPECT_EQ(a.BackoffAfter(i), b.BackoffAfter(i));
}

TEST(RequestQueue, DemandFirstFifoWithinAClass) {
  RequestQueue<int> q(8, 2);
  q.Push(Priority::kBackground, 1);
  q.Push(Priority::kEarly, 2);
  q.Push(Priority::kDemand, 3);
  q.Push(Priority::kDemand, 4);
  q.Push(Priority::kEarly, 5);
  std::vector<int> order;
  while (auto x = q.PopStartable(0)) order.push_back(*x);
  EXPECT_EQ(order, (std::vector<int>{3, 4, 2, 5, 1}));
}

TEST(RequestQueue, PrefetchNeverTakesTheReservedDemandSlots) {
  RequestQueue<int> q(4, 2);
  for (int i = 0; i < 10; ++i) q.Push(Priority::kBackground, i);
  EXPECT_TRUE(q.PopStartable(0).has_value());
  EXPECT_TRUE(q.PopStartable(1).has_value());
  EXPECT_FALSE(q.PopStartable(2).has_value()) << "prefetch may use only max - reserved slots";
  q.Push(Priority::kDemand, 100);
  EXPECT_EQ(q.PopStartable(2), 100);
  EXPECT_EQ(q.PopStartable(3), std::nullopt);  // background still capped
  q.Push(Priority::kDemand, 101);
  EXPECT_EQ(q.PopStartable(3), 101);
  EXPECT_EQ(q.PopStartable(4), std::nullopt) << "never past max_running";
}

AttemptResult Ok206(const std::vector<uint8_t>& body, const std::string& range, const std::string& digest) {
  AttemptResult r;
  r.http_status = 206;
  r.content_range = range;
  r.content_digest = digest;
  r.body = &body;
  return r;
}

TEST(AttemptCheck, AcceptsAMatchingRangeReply) {
  std::vector<uint8_t> body(100, 7);
  Request req;
  req.range = ByteRange{1000, 100};
  EXPECT_FALSE(CheckAttempt(req, Ok206(body, "bytes 1000-1099/5000", ContentDigestValue(Sha256(body))), "ca").has_value());
}

TEST(AttemptCheck, ClassifiesEveryFailure) {
  std::vector<uint8_t> body(100, 7);
  std::string digest = ContentDigestValue(Sha256(body));
  Request req;
  req.range = ByteRange{1000, 100};
  auto err = [&](AttemptResult r) { return CheckAttempt(req, r, "ca.pem")->error; };
  EXPECT_EQ(err(Ok206(body, "bytes 1000-1099/5000", "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:")),
            FetchError::kDigestMismatch);
  EXPECT_EQ(err(Ok206(body, "bytes 1000-1099/5000", "")), FetchError::kProtocol);
  EXPECT_EQ(err(Ok206(body, "bytes 0-99/5000", digest)), FetchError::kProtocol);
  EXPECT_EQ(err(Ok206(body, "bytes 1000-1199/5000", digest)), FetchError::kProtocol);
  std::vector<uint8_t> shorter(50, 7);
  EXPECT_EQ(err(Ok206(shorter, "bytes 1000-1099/5000", digest)), FetchError::kShortBody);
  AttemptResult r404 = Ok206(body, "", "");
  r404.http_status = 404;
  r404.affinity_error = "not_found";
  auto f = CheckAttempt(req, r404, "ca.pem");
  EXPECT_EQ(f->error, FetchError::kClientError);
  EXPECT_NE(f->message.find("not_found"), std::string::npos);
  EXPECT_EQ(StatusCodeFor(f->error, 404), StatusCode::kNotFound);
  AttemptResult r503 = r404;
  r503.http_status = 503;
  EXPECT_EQ(err(r503), FetchError::kServerError);
  AttemptResult tls;
  tls.curl_code = CURLE_PEER_FAILED_VERIFICATION;
  EXPECT_EQ(err(tls), FetchError::kTlsUntrusted);
  EXPECT_NE(CheckAttempt(req, tls, "ca.pem")->message.find("ca.pem"), std::string::npos);
  AttemptResult refused;
  refused.curl_code = CURLE_COULDNT_CONNECT;
  EXPECT_EQ(err(refused), FetchError::kConnect);
  EXPECT_TRUE(IsRetryable(FetchError::kConnect));
  EXPECT_TRUE(IsRetryable(FetchError::kDigestMismatch));
  EXPECT_FALSE(IsRetryable(FetchError::kTlsUntrusted));
  EXPECT_FALSE(IsRetryable(FetchError::kClientError));
}

}  // namespace
}  // namespace affinity::fetcher
