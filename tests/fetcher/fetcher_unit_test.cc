// Unit tests of the fetcher's pure parts: retry policy, request queue,
// attempt verdicts and error classification. No network, no threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "common/digest.h"
#include "fetcher/attempt_check.h"
#include "fetcher/fetch_error.h"
#include "fetcher/request_queue.h"
#include "fetcher/retry_policy.h"

namespace affinity::fetcher {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- RetryPolicy

TEST(RetryPolicy, CeilingDoublesFromInitialUpToTheCap) {
  RetryPolicy p(milliseconds(50), milliseconds(2000), 1234);
  EXPECT_EQ(p.CeilingAfter(1), milliseconds(50));
  EXPECT_EQ(p.CeilingAfter(2), milliseconds(100));
  EXPECT_EQ(p.CeilingAfter(3), milliseconds(200));
  EXPECT_EQ(p.CeilingAfter(5), milliseconds(800));
  EXPECT_EQ(p.CeilingAfter(6), milliseconds(1600));
  EXPECT_EQ(p.CeilingAfter(7), milliseconds(2000));
  EXPECT_EQ(p.CeilingAfter(100), milliseconds(2000)) << "no overflow for huge attempt counts";
  EXPECT_EQ(p.CeilingAfter(0), milliseconds(50));
}

TEST(RetryPolicy, FullJitterStaysWithinBoundsAndCoversThem) {
  RetryPolicy p(milliseconds(50), milliseconds(2000), 42);
  for (int attempt = 1; attempt <= 10; ++attempt) {
    const milliseconds ceiling = p.CeilingAfter(attempt);
    milliseconds lo = ceiling, hi{0};
    int64_t total = 0;
    constexpr int kSamples = 2000;
    for (int i = 0; i < kSamples; ++i) {
      milliseconds b = p.BackoffAfter(attempt);
      ASSERT_GE(b.count(), 0);
      ASSERT_LE(b, ceiling);
      lo = std::min(lo, b);
      hi = std::max(hi, b);
      total += b.count();
    }
    // Full jitter is uniform over [0, ceiling]: it reaches both ends and averages ceiling/2.
    EXPECT_LE(lo.count(), ceiling.count() / 20) << "attempt " << attempt;
    EXPECT_GE(hi.count(), ceiling.count() * 19 / 20) << "attempt " << attempt;
    double mean = static_cast<double>(total) / kSamples;
    EXPECT_NEAR(mean, ceiling.count() / 2.0, ceiling.count() * 0.08) << "attempt " << attempt;
  }
}

TEST(RetryPolicy, SameSeedSameSequenceOtherSeedOtherSequence) {
  RetryPolicy a(milliseconds(10), milliseconds(1000), 99), b(milliseconds(10), milliseconds(1000), 99),
      c(milliseconds(10), milliseconds(1000), 100);
  std::vector<int64_t> sa, sb, sc;
  for (int i = 1; i <= 20; ++i) {
    sa.push_back(a.BackoffAfter(i).count());
    sb.push_back(b.BackoffAfter(i).count());
    sc.push_back(c.BackoffAfter(i).count());
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(RetryPolicy, ZeroInitialBackoffRetriesAtOnce) {
  RetryPolicy p(milliseconds(0), milliseconds(0), 1);
  for (int i = 1; i < 5; ++i) EXPECT_EQ(p.BackoffAfter(i), milliseconds(0));
}

TEST(RetryPolicy, NextAttemptIsNowPlusTheJitteredWaitWhenTheDeadlineIsFar) {
  RetryPolicy p(milliseconds(100), milliseconds(1000), 7, milliseconds(50));
  const auto now = Clock::now();
  const auto deadline = now + std::chrono::seconds(60);
  for (int i = 0; i < 200; ++i) {
    auto at = p.NextAttemptAt(3, now, deadline);
    ASSERT_TRUE(at.has_value());
    EXPECT_GE(*at, now);
    EXPECT_LE(*at, now + milliseconds(400));
  }
}

TEST(RetryPolicy, NextAttemptIsClippedToLeaveTheLastAttemptItsTime) {
  RetryPolicy p(milliseconds(1000), milliseconds(1000), 7, milliseconds(50));
  const auto now = Clock::now();
  const auto deadline = now + milliseconds(300);
  bool clipped = false;
  for (int i = 0; i < 200; ++i) {
    auto at = p.NextAttemptAt(5, now, deadline);  // waits up to 1 s, only 300 ms left
    ASSERT_TRUE(at.has_value());
    EXPECT_LE(*at, deadline - milliseconds(50)) << "never waits past the deadline minus the last attempt's time";
    clipped |= *at == deadline - milliseconds(50);
  }
  EXPECT_TRUE(clipped);
}

TEST(RetryPolicy, GivesUpWhenTheDeadlineLeavesNoTimeForAnAttempt) {
  RetryPolicy p(milliseconds(0), milliseconds(0), 7, milliseconds(50));
  const auto now = Clock::now();
  EXPECT_FALSE(p.NextAttemptAt(1, now, now + milliseconds(49)).has_value());
  EXPECT_FALSE(p.NextAttemptAt(1, now, now).has_value());
  EXPECT_FALSE(p.NextAttemptAt(1, now, now - milliseconds(10)).has_value());
  EXPECT_TRUE(p.NextAttemptAt(1, now, now + milliseconds(50)).has_value());
}

// ---------------------------------------------------------------- RequestQueue

const Clock::time_point kFar = Clock::now() + std::chrono::hours(1);

std::vector<int> Drain(RequestQueue<int>& q, int running = 0) {
  std::vector<int> order;
  while (auto x = q.PopStartable(running)) order.push_back(*x);
  return order;
}

TEST(RequestQueue, DemandFirstThenByClassFifoWithinAClass) {
  RequestQueue<int> q(8, 2);
  q.Push(Priority::kBackground, kFar, 1);
  q.Push(Priority::kEarly, kFar, 2);
  q.Push(Priority::kDemand, kFar, 3);
  q.Push(Priority::kSuccessor, kFar, 4);
  q.Push(Priority::kDemand, kFar, 5);
  q.Push(Priority::kEarly, kFar, 6);
  q.Push(Priority::kCritical, kFar, 7);
  q.Push(Priority::kBackground, kFar, 8);
  EXPECT_EQ(q.size(), 8u);
  EXPECT_EQ(Drain(q), (std::vector<int>{3, 5, 7, 2, 6, 4, 1, 8}));
  EXPECT_TRUE(q.empty());
}

TEST(RequestQueue, PrefetchNeverTakesTheReservedDemandSlots) {
  RequestQueue<int> q(4, 2);
  EXPECT_EQ(q.prefetch_limit(), 2);
  for (int i = 0; i < 10; ++i) q.Push(Priority::kBackground, kFar, i);
  EXPECT_EQ(q.PopStartable(0), 0);
  EXPECT_EQ(q.PopStartable(1), 1);
  EXPECT_EQ(q.PopStartable(2), std::nullopt) << "prefetch may use only max - reserved slots";
  q.Push(Priority::kDemand, kFar, 100);
  EXPECT_EQ(q.PopStartable(2), 100) << "demand takes a reserved slot past queued prefetches";
  EXPECT_EQ(q.PopStartable(3), std::nullopt) << "background still capped";
  q.Push(Priority::kDemand, kFar, 101);
  EXPECT_EQ(q.PopStartable(3), 101);
  q.Push(Priority::kDemand, kFar, 102);
  EXPECT_EQ(q.PopStartable(4), std::nullopt) << "never past max_running, not even for demand";
  EXPECT_EQ(q.PopStartable(1), 102) << "demand still first when a slot frees";
  EXPECT_EQ(q.PopStartable(1), 2);
}

TEST(RequestQueue, EveryPrefetchClassIsCappedNotOnlyBackground) {
  RequestQueue<int> q(3, 1);
  q.Push(Priority::kCritical, kFar, 1);
  EXPECT_EQ(q.PopStartable(2), std::nullopt);
  EXPECT_EQ(q.PopStartable(1), 1);
}

TEST(RequestQueue, ReservationNeverStarvesPrefetchCompletely) {
  RequestQueue<int> q(2, 5);  // asks for more reserved slots than exist
  EXPECT_EQ(q.prefetch_limit(), 1);
  q.Push(Priority::kBackground, kFar, 1);
  EXPECT_EQ(q.PopStartable(0), 1);
}

TEST(RequestQueue, ExpiredEntriesAreTakenInAnyClass) {
  RequestQueue<int> q(8, 2);
  const auto now = Clock::now();
  q.Push(Priority::kDemand, now + milliseconds(10), 1);
  q.Push(Priority::kBackground, now - milliseconds(1), 2);
  q.Push(Priority::kEarly, now, 3);
  q.Push(Priority::kDemand, kFar, 4);
  EXPECT_EQ(q.EarliestDeadline(), now - milliseconds(1));
  std::vector<int> expired = q.TakeExpired(now);
  std::sort(expired.begin(), expired.end());
  EXPECT_EQ(expired, (std::vector<int>{2, 3}));
  EXPECT_EQ(q.EarliestDeadline(), now + milliseconds(10));
  EXPECT_TRUE(q.TakeExpired(now).empty());
  EXPECT_EQ(Drain(q), (std::vector<int>{1, 4}));
  EXPECT_EQ(q.EarliestDeadline(), std::nullopt);
}

TEST(RequestQueue, TakeAllEmptiesTheQueueMostUrgentFirst) {
  RequestQueue<int> q(1, 0);
  q.Push(Priority::kBackground, kFar, 1);
  q.Push(Priority::kDemand, kFar, 2);
  EXPECT_EQ(q.TakeAll(), (std::vector<int>{2, 1}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.EarliestDeadline(), std::nullopt);
}

// ---------------------------------------------------------------- FetchError

TEST(FetchError, RetryabilityAndStatusCodes) {
  struct Row {
    FetchError e;
    bool retryable;
    int http;
    StatusCode code;
  };
  const Row rows[] = {
      {FetchError::kConnect, true, 0, StatusCode::kUnavailable},
      {FetchError::kTimeout, true, 0, StatusCode::kUnavailable},
      {FetchError::kServerError, true, 503, StatusCode::kUnavailable},
      {FetchError::kDigestMismatch, true, 206, StatusCode::kCorruption},
      {FetchError::kShortBody, true, 206, StatusCode::kCorruption},
      {FetchError::kProtocol, true, 200, StatusCode::kCorruption},
      {FetchError::kTlsUntrusted, false, 0, StatusCode::kPermissionDenied},
      {FetchError::kTlsHandshake, false, 0, StatusCode::kPermissionDenied},
      {FetchError::kClientError, false, 404, StatusCode::kNotFound},
      {FetchError::kClientError, false, 403, StatusCode::kPermissionDenied},
      {FetchError::kClientError, false, 401, StatusCode::kPermissionDenied},
      {FetchError::kClientError, false, 416, StatusCode::kOutOfRange},
      {FetchError::kClientError, false, 400, StatusCode::kInvalidArgument},
      {FetchError::kDeadline, false, 0, StatusCode::kTimeout},
      {FetchError::kCancelled, false, 0, StatusCode::kCancelled},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(IsRetryable(r.e), r.retryable) << FetchErrorName(r.e);
    EXPECT_EQ(StatusCodeFor(r.e, r.http), r.code) << FetchErrorName(r.e) << " " << r.http;
    EXPECT_NE(FetchErrorName(r.e), "unknown");
  }
}

TEST(ClassifyCurlError, Table) {
  struct Row {
    CURLcode code;
    const char* detail;
    FetchError expected;
  };
  const Row rows[] = {
      {CURLE_COULDNT_CONNECT, "Failed to connect to 127.0.0.1 port 1 after 0 ms: Connection refused",
       FetchError::kConnect},
      {CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: nowhere", FetchError::kConnect},
      {CURLE_SEND_ERROR, "Connection reset by peer", FetchError::kConnect},
      {CURLE_RECV_ERROR, "Connection reset by peer", FetchError::kServerError},
      {CURLE_GOT_NOTHING, "Empty reply from server", FetchError::kServerError},
      {CURLE_PARTIAL_FILE, "end of response with 100 bytes missing", FetchError::kServerError},
      {CURLE_OPERATION_TIMEDOUT, "Operation timed out after 100 milliseconds", FetchError::kTimeout},
      {CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem: self-signed certificate in certificate chain",
       FetchError::kTlsUntrusted},
      {CURLE_SSL_CACERT_BADFILE, "error setting certificate file: /x/ca.pem", FetchError::kTlsUntrusted},
      {CURLE_SSL_CERTPROBLEM, "could not load PEM client certificate", FetchError::kTlsHandshake},
      {CURLE_SSL_CONNECT_ERROR, "OpenSSL/3.0: error:0A000418:SSL routines::tlsv1 alert unknown ca",
       FetchError::kTlsHandshake},
      // TLS 1.3: the server refuses our certificate after the client finished its handshake.
      {CURLE_RECV_ERROR, "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate required, errno 0",
       FetchError::kTlsHandshake},
      {CURLE_RECV_ERROR, "OpenSSL SSL_read: error:0A000418:SSL routines::tlsv1 alert unknown ca, errno 0",
       FetchError::kTlsHandshake},
      // A handshake cut off by a dying or overloaded server is transient.
      {CURLE_SSL_CONNECT_ERROR, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to 127.0.0.1:8443",
       FetchError::kConnect},
      {CURLE_URL_MALFORMAT, "URL using bad/illegal format", FetchError::kClientError},
  };
  for (const Row& r : rows) {
    AttemptFailure f = ClassifyCurlError(r.code, r.detail, "/etc/affinity/ca.pem");
    EXPECT_EQ(FetchErrorName(f.error), FetchErrorName(r.expected)) << curl_easy_strerror(r.code) << ": " << r.detail;
    EXPECT_NE(f.message.find(r.detail), std::string::npos) << "curl's detail is kept: " << f.message;
  }
}

TEST(ClassifyCurlError, MessagesTellTheUserWhatToFix) {
  AttemptFailure untrusted = ClassifyCurlError(CURLE_PEER_FAILED_VERIFICATION, "self-signed", "/etc/a/ca.pem");
  EXPECT_NE(untrusted.message.find("not trusted by --ca-file /etc/a/ca.pem"), std::string::npos) << untrusted.message;
  AttemptFailure handshake = ClassifyCurlError(CURLE_SSL_CONNECT_ERROR, "alert bad certificate", "ca.pem");
  EXPECT_NE(handshake.message.find("client certificate"), std::string::npos) << handshake.message;
  AttemptFailure refused = ClassifyCurlError(CURLE_COULDNT_CONNECT, "Connection refused", "ca.pem");
  EXPECT_EQ(refused.message.rfind("connect: ", 0), 0u) << refused.message;
}

// ---------------------------------------------------------------- CheckAttempt

AttemptResult Reply(long status, const std::vector<uint8_t>& body, std::string content_range,
                    std::string digest) {
  AttemptResult r;
  r.http_status = status;
  r.content_range = std::move(content_range);
  r.content_digest = std::move(digest);
  r.body = &body;
  return r;
}

Request RangeRequest(uint64_t offset, uint64_t length) {
  Request req;
  req.path = "/v1/vms/vm/images/disk.raw";
  req.range = ByteRange{offset, length};
  return req;
}

class CheckAttemptTest : public ::testing::Test {
 protected:
  std::optional<FetchError> Verdict(const Request& req, const AttemptResult& r) {
    auto f = CheckAttempt(req, r, "ca.pem");
    if (!f) return std::nullopt;
    last_message_ = f->message;
    return f->error;
  }
  std::vector<uint8_t> body_ = std::vector<uint8_t>(100, 7);
  std::string digest_ = ContentDigestValue(Sha256(body_));
  std::string last_message_;
};

TEST_F(CheckAttemptTest, AcceptsAnExactRangeReply) {
  EXPECT_EQ(Verdict(RangeRequest(1000, 100), Reply(206, body_, "bytes 1000-1099/5000", digest_)), std::nullopt);
}

TEST_F(CheckAttemptTest, UsesTheDigestTakenWhileTheBodyArrived) {
  // The fetcher hashes a body as it streams in; the check trusts that hash
  // and does not hash the body again, so a stale one must fail the check.
  AttemptResult streamed = Reply(206, body_, "bytes 1000-1099/5000", digest_);
  streamed.body_sha256 = Sha256(body_);
  EXPECT_EQ(Verdict(RangeRequest(1000, 100), streamed), std::nullopt);
  streamed.body_sha256 = Sha256(std::string_view("other bytes"));
  EXPECT_EQ(Verdict(RangeRequest(1000, 100), streamed), FetchError::kDigestMismatch);
}

TEST_F(CheckAttemptTest, AcceptsARangeClampedAtTheEndOfTheImage) {
  // Asked for 1000..1199 of a 1100-byte image: the server sends 1000..1099.
  EXPECT_EQ(Verdict(RangeRequest(1000, 200), Reply(206, body_, "bytes 1000-1099/1100", digest_)), std::nullopt);
}

TEST_F(CheckAttemptTest, RangeReplyFailures) {
  const Request req = RangeRequest(1000, 100);
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes 1000-1099/5000",
                               "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:")),
            FetchError::kDigestMismatch);
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes 1000-1099/5000", "")), FetchError::kProtocol)
      << "a range reply must carry a digest";
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes 1000-1099/5000", "sha-256=:not base64")), FetchError::kProtocol);
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes 0-99/5000", digest_)), FetchError::kProtocol) << "wrong start";
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes 1000-1199/5000", digest_)), FetchError::kProtocol)
      << "past the requested end";
  EXPECT_EQ(Verdict(req, Reply(206, body_, "", digest_)), FetchError::kProtocol) << "no Content-Range";
  EXPECT_EQ(Verdict(req, Reply(206, body_, "bytes x-y/z", digest_)), FetchError::kProtocol);
  EXPECT_EQ(Verdict(req, Reply(200, body_, "", digest_)), FetchError::kProtocol) << "range ignored by the server";
  std::vector<uint8_t> shorter(50, 7);
  EXPECT_EQ(Verdict(req, Reply(206, shorter, "bytes 1000-1099/5000", ContentDigestValue(Sha256(shorter)))),
            FetchError::kShortBody);
  EXPECT_NE(last_message_.find("50 of 100"), std::string::npos) << last_message_;
  std::vector<uint8_t> longer(150, 7);
  EXPECT_EQ(Verdict(req, Reply(206, longer, "bytes 1000-1099/5000", ContentDigestValue(Sha256(longer)))),
            FetchError::kProtocol);
  AttemptResult overflow = Reply(206, body_, "bytes 1000-1099/5000", digest_);
  overflow.body_too_long = true;
  overflow.curl_code = CURLE_WRITE_ERROR;
  EXPECT_EQ(Verdict(req, overflow), FetchError::kProtocol);
}

TEST_F(CheckAttemptTest, WholeObjectNeedsNoDigestButAPresentOneIsChecked) {
  Request whole;
  whole.path = "/v1/metrics";
  EXPECT_EQ(Verdict(whole, Reply(200, body_, "", "")), std::nullopt);
  EXPECT_EQ(Verdict(whole, Reply(200, body_, "", digest_)), std::nullopt);
  EXPECT_EQ(Verdict(whole, Reply(200, body_, "", "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:")),
            FetchError::kDigestMismatch);
  EXPECT_EQ(Verdict(whole, Reply(204, {}, "", "")), std::nullopt);  // a PUT's answer
  EXPECT_EQ(Verdict(whole, Reply(302, body_, "", "")), FetchError::kProtocol);
}

TEST_F(CheckAttemptTest, HttpErrorsCarryTheServersReason) {
  const std::string json = R"({"error":"not_found","reason":"image 'missing.raw' of vm 'vm' not found"})";
  std::vector<uint8_t> body(json.begin(), json.end());
  AttemptResult r404 = Reply(404, body, "", "");
  r404.affinity_error = "not_found";
  auto f = CheckAttempt(RangeRequest(0, 10), r404, "ca.pem");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->error, FetchError::kClientError);
  EXPECT_EQ(f->http_status, 404);
  EXPECT_EQ(f->message, "HTTP 404 not_found: image 'missing.raw' of vm 'vm' not found");

  AttemptResult r503 = Reply(503, body, "", "");
  EXPECT_EQ(CheckAttempt(RangeRequest(0, 10), r503, "ca.pem")->error, FetchError::kServerError);

  const std::string html = "<html>\n<body>Bad Gateway</body></html>";
  std::vector<uint8_t> html_body(html.begin(), html.end());
  auto g = CheckAttempt(RangeRequest(0, 10), Reply(502, html_body, "", ""), "ca.pem");
  EXPECT_EQ(g->error, FetchError::kServerError);
  EXPECT_NE(g->message.find("Bad Gateway"), std::string::npos) << g->message;

  std::vector<uint8_t> empty;
  EXPECT_NE(CheckAttempt(RangeRequest(0, 10), Reply(400, empty, "", ""), "ca.pem")->message.find("no reason"),
            std::string::npos);
}

TEST_F(CheckAttemptTest, CurlFailuresWinOverHttpChecks) {
  AttemptResult r = Reply(206, body_, "bytes 0-99/100", digest_);
  r.curl_code = CURLE_OPERATION_TIMEDOUT;
  EXPECT_EQ(Verdict(RangeRequest(0, 100), r), FetchError::kTimeout);
}

}  // namespace
}  // namespace affinity::fetcher
