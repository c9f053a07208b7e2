#include "controller/notify/webhook_notifier.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging/log.h"
#include "common/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/notify/webhook_receiver.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::controller::notify {

// gtest's printer for WebhookStats (found by argument-dependent lookup).
void PrintTo(const WebhookStats& stats, std::ostream* os) {
  *os << "{delivered " << stats.delivered << ", failed_attempts " << stats.failed_attempts
      << ", dropped " << stats.dropped << ", queued " << stats.queued << "}";
}

namespace {

using ::certfleet::testing::FakeClock;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kKey[] = "hmac-key-6f1d2c-never-log-me";
const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21T14:13:20Z
constexpr absl::Duration kWait = absl::Seconds(10);

Event Expiring(const std::string& fqdn) {
  Event event;
  event.type = kCertificateExpiring;
  event.at = kT0;
  event.subject = fqdn;
  event.summary = absl::StrCat("The SCOM certificate of ", fqdn, " expires in 7 days.");
  event.fields = {{"agent_id", "agent-1"},
                  {"fqdn", fqdn},
                  {"not_after", "2026-09-28T10:13:20Z"},
                  {"thumbprint", std::string(40, 'A')}};
  return event;
}

std::unique_ptr<WebhookReceiver> StartReceiver(WebhookReceiver::Responder responder = nullptr) {
  absl::StatusOr<std::unique_ptr<WebhookReceiver>> receiver =
      WebhookReceiver::Start(std::move(responder));
  if (!receiver.ok()) {
    ADD_FAILURE() << receiver.status();
    return nullptr;
  }
  return std::move(*receiver);
}

// Options for a webhook at `url` with quick retries.
WebhookOptions Options(const std::string& url) {
  WebhookOptions options;
  options.name = "ops";
  options.url = url;
  options.hmac_key = kKey;
  options.timeout = absl::Seconds(5);
  options.max_attempts = 5;
  options.initial_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(5);
  return options;
}

std::unique_ptr<WebhookNotifier> MustCreate(WebhookOptions options, WebhookDeps deps) {
  absl::StatusOr<std::unique_ptr<WebhookNotifier>> webhook =
      WebhookNotifier::Create(std::move(options), std::move(deps));
  if (!webhook.ok()) {
    ADD_FAILURE() << webhook.status();
    return nullptr;
  }
  return std::move(*webhook);
}

// Waits (real time) until `done(webhook.Stats())` holds; false on timeout.
bool WaitForStats(const WebhookNotifier& webhook,
                  const std::function<bool(const WebhookStats&)>& done,
                  absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done(webhook.Stats())) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

bool Settled(const WebhookStats& stats) { return stats.queued == 0; }

WebhookStats Stats(uint64_t delivered, uint64_t failed_attempts, uint64_t dropped,
                   uint64_t queued) {
  return WebhookStats{delivered, failed_attempts, dropped, queued};
}

class WebhookNotifierTest : public ::testing::Test {
 protected:
  common::RealClock clock_;
};

TEST_F(WebhookNotifierTest, CreateRejectsUrlsThatAreNotHttpOrHttps) {
  for (const char* url : {"", "ftp://files.example/hook", "file:///etc/passwd", "hooks.example/x",
                          "http://", "not a url", "gopher://user:s3cret@h/x"}) {
    absl::StatusOr<std::unique_ptr<WebhookNotifier>> webhook =
        WebhookNotifier::Create(Options(url), WebhookDeps{clock_});
    EXPECT_EQ(webhook.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(webhook.status().message(), HasSubstr("webhook \"ops\": url")) << url;
    EXPECT_THAT(webhook.status().message(), Not(HasSubstr("s3cret"))) << url;
  }
}

TEST_F(WebhookNotifierTest, CreateRejectsOptionsOutOfRangeNamingTheField) {
  const std::vector<std::pair<std::string, std::function<void(WebhookOptions&)>>> cases = {
      {"name is empty", [](WebhookOptions& o) { o.name.clear(); }},
      {"timeout", [](WebhookOptions& o) { o.timeout = absl::ZeroDuration(); }},
      {"max_attempts", [](WebhookOptions& o) { o.max_attempts = 0; }},
      {"initial_backoff", [](WebhookOptions& o) { o.initial_backoff = -absl::Seconds(1); }},
      {"max_backoff", [](WebhookOptions& o) { o.max_backoff = absl::ZeroDuration(); }},
      {"max_queue", [](WebhookOptions& o) { o.max_queue = 0; }},
      {"empty event type",
       [](WebhookOptions& o) {
         o.events = {kRenewalFailed, ""};
       }},
  };
  for (const auto& [field, mutate] : cases) {
    WebhookOptions options = Options("http://127.0.0.1:1/hook");
    mutate(options);
    absl::StatusOr<std::unique_ptr<WebhookNotifier>> webhook =
        WebhookNotifier::Create(options, WebhookDeps{clock_});
    EXPECT_EQ(webhook.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(webhook.status().message(), HasSubstr(field));
  }
}

TEST_F(WebhookNotifierTest, CreateAcceptsHttpsWithoutTouchingTheNetwork) {
  std::unique_ptr<WebhookNotifier> webhook =
      MustCreate(Options("HTTPS://hooks.example.invalid/services/T0/B0?token=x"), {clock_});
  ASSERT_NE(webhook, nullptr);
  EXPECT_EQ(webhook->name(), "ops");
  EXPECT_EQ(webhook->Stats(), Stats(0, 0, 0, 0));
}

TEST_F(WebhookNotifierTest, PostsOneSignedJsonRequestWithTheDocumentedHeaders) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  const Event event = Expiring("ms1.corp.example");
  webhook->Notify(event);
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));

  const std::vector<ReceivedRequest> requests = receiver->requests();
  ASSERT_THAT(requests, SizeIs(1));
  const ReceivedRequest& request = requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/hook");
  EXPECT_EQ(request.Header("Content-Type"), "application/json");
  EXPECT_EQ(request.Header("X-Certfleet-Event"), "certificate.expiring");
  EXPECT_THAT(request.Header("User-Agent"), HasSubstr("certfleet/"));
  EXPECT_EQ(request.Header("X-Certfleet-Signature"),
            absl::StrCat("sha256=", HmacSha256Hex(kKey, request.body)));

  std::optional<ParsedBody> body = ParseBody(request.body);
  ASSERT_TRUE(body.has_value()) << request.body;
  EXPECT_EQ(body->event, event);
  EXPECT_EQ(body->attempt, 1);
  EXPECT_EQ(body->delivery_id, request.Header("X-Certfleet-Delivery"));
  EXPECT_THAT(body->delivery_id,
              MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  EXPECT_THAT(request.body, HasSubstr("\"at\":\"2026-09-21T14:13:20Z\""));

  EXPECT_EQ(webhook->Stats(), Stats(1, 0, 0, 0));
}

TEST_F(WebhookNotifierTest, LeavesRequestsUnsignedWithoutAKey) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  WebhookOptions options = Options(receiver->url());
  options.hmac_key.clear();
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  const std::vector<ReceivedRequest> requests = receiver->WaitForRequests(1, kWait);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_EQ(requests[0].headers.count("x-certfleet-signature"), 0u);
}

TEST_F(WebhookNotifierTest, GivesEveryEventItsOwnDeliveryId) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  for (int i = 0; i < 20; ++i) webhook->Notify(Expiring(absl::StrCat("h", i, ".example")));
  std::set<std::string> ids;
  for (const ReceivedRequest& request : receiver->WaitForRequests(20, kWait)) {
    ids.insert(request.Header("X-Certfleet-Delivery"));
  }
  EXPECT_THAT(ids, SizeIs(20));
}

TEST_F(WebhookNotifierTest, RetriesServerErrorsWithTheSameDeliveryIdAndARisingAttempt) {
  std::unique_ptr<WebhookReceiver> receiver =
      StartReceiver([](int index) { return Answer{index < 3 ? 500 : 200}; });
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  const Event event = Expiring("gw1.corp.example");
  webhook->Notify(event);
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(1, 3, 0, 0));

  const std::vector<ReceivedRequest> requests = receiver->requests();
  ASSERT_THAT(requests, SizeIs(4));
  const std::string delivery_id = requests[0].Header("X-Certfleet-Delivery");
  EXPECT_THAT(delivery_id, Not(IsEmpty()));
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("attempt ", i + 1));
    EXPECT_EQ(requests[i].Header("X-Certfleet-Delivery"), delivery_id);
    EXPECT_EQ(requests[i].Header("X-Certfleet-Event"), "certificate.expiring");
    EXPECT_EQ(requests[i].Header("X-Certfleet-Signature"),
              absl::StrCat("sha256=", HmacSha256Hex(kKey, requests[i].body)));
    std::optional<ParsedBody> body = ParseBody(requests[i].body);
    ASSERT_TRUE(body.has_value());
    EXPECT_EQ(body->event, event);
    EXPECT_EQ(body->delivery_id, delivery_id);
    EXPECT_EQ(body->attempt, static_cast<int>(i) + 1);
  }
}

TEST_F(WebhookNotifierTest, RetriesTimeoutAndRateLimitAnswersAndRedirects) {
  const std::vector<int> statuses = {408, 429, 503, 302, 200};
  std::unique_ptr<WebhookReceiver> receiver =
      StartReceiver([&statuses](int index) { return Answer{statuses.at(index)}; });
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(1, 4, 0, 0));
  EXPECT_THAT(receiver->requests(), SizeIs(5));
}

TEST_F(WebhookNotifierTest, DoesNotRetryAClientErrorAndGoesOnWithTheNextEvent) {
  std::unique_ptr<WebhookReceiver> receiver =
      StartReceiver([](int index) { return Answer{index == 0 ? 400 : 200}; });
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("refused.example"));
  webhook->Notify(Expiring("accepted.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(1, 1, 1, 0));

  const std::vector<ReceivedRequest> requests = receiver->requests();
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_EQ(ParseBody(requests[0].body)->event.subject, "refused.example");
  EXPECT_EQ(ParseBody(requests[1].body)->event.subject, "accepted.example");
  EXPECT_EQ(ParseBody(requests[1].body)->attempt, 1);
}

TEST_F(WebhookNotifierTest, DropsAndCountsAnEventAfterMaxAttempts) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver([](int) { return Answer{500}; });
  ASSERT_NE(receiver, nullptr);
  WebhookOptions options = Options(receiver->url());
  options.max_attempts = 3;
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.dropped == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(0, 3, 1, 0));
  absl::SleepFor(absl::Milliseconds(100));  // no fourth attempt comes late
  EXPECT_THAT(receiver->requests(), SizeIs(3));
}

TEST_F(WebhookNotifierTest, RetriesAPortWhereNothingListensThenDrops) {
  absl::StatusOr<std::string> url = DeadPortUrl();
  ASSERT_TRUE(url.ok()) << url.status();
  WebhookOptions options = Options(*url);
  options.max_attempts = 3;
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.dropped == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(0, 3, 1, 0));
}

TEST_F(WebhookNotifierTest, RetriesAConnectionClosedWithoutAnAnswer) {
  absl::StatusOr<std::unique_ptr<ClosingListener>> listener = ClosingListener::Start();
  ASSERT_TRUE(listener.ok()) << listener.status();
  WebhookOptions options = Options((*listener)->url());
  options.max_attempts = 2;
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.dropped == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(0, 2, 1, 0));
  EXPECT_GE((*listener)->connections(), 2);
}

TEST_F(WebhookNotifierTest, CountsAReceiverSlowerThanTheTimeoutAsAFailedAttempt) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver([](int index) {
    return index == 0 ? Answer{200, absl::Seconds(30)} : Answer{200};
  });
  ASSERT_NE(receiver, nullptr);
  WebhookOptions options = Options(receiver->url());
  options.timeout = absl::Milliseconds(200);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(1, 1, 0, 0));
  const std::vector<ReceivedRequest> requests = receiver->requests();
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_LT(requests[1].received_at - requests[0].received_at, absl::Seconds(2));
  EXPECT_EQ(ParseBody(requests[1].body)->attempt, 2);
}

TEST_F(WebhookNotifierTest, ShutdownWithAPendingQueueReturnsWithinTheGrace) {
  // The receiver holds every request until the end of the test.
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver([](int) {
    return Answer{200, absl::Seconds(60)};
  });
  ASSERT_NE(receiver, nullptr);
  WebhookOptions options = Options(receiver->url());
  options.timeout = absl::Seconds(30);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  for (int i = 0; i < 100; ++i) webhook->Notify(Expiring(absl::StrCat("h", i, ".example")));
  ASSERT_THAT(receiver->WaitForRequests(1, kWait), SizeIs(1));

  const absl::Duration grace = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  webhook->Shutdown(grace);
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, grace);
  EXPECT_LT(took, grace + absl::Milliseconds(700));
  EXPECT_EQ(webhook->Stats(), Stats(0, 0, 100, 0));
}

TEST_F(WebhookNotifierTest, ShutdownDeliversWhatIsQueuedWhenTheGraceAllows) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  for (int i = 0; i < 30; ++i) webhook->Notify(Expiring(absl::StrCat("h", i, ".example")));
  const absl::Time start = absl::Now();
  webhook->Shutdown(absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // returns once drained, not at the grace
  EXPECT_EQ(webhook->Stats(), Stats(30, 0, 0, 0));
  EXPECT_THAT(receiver->requests(), SizeIs(30));
}

TEST_F(WebhookNotifierTest, ShutdownIsIdempotentAndLaterEventsAreDroppedAndCounted) {
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(Options(receiver->url()), {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Shutdown(absl::Seconds(1));
  webhook->Shutdown(absl::Seconds(1));
  webhook->Notify(Expiring("late.example"));
  webhook->Notify(Expiring("later.example"));
  EXPECT_EQ(webhook->Stats(), Stats(0, 0, 2, 0));
  webhook.reset();  // the destructor after Shutdown is fine
  EXPECT_THAT(receiver->requests(), IsEmpty());
}

TEST_F(WebhookNotifierTest, AFullQueueDropsTheOldestEventsAndCountsThem) {
  absl::Notification release;
  std::unique_ptr<WebhookReceiver> receiver = StartReceiver([&release](int index) {
    if (index == 0) release.WaitForNotificationWithTimeout(kWait);
    return Answer{200};
  });
  ASSERT_NE(receiver, nullptr);
  WebhookOptions options = Options(receiver->url());
  options.max_queue = 3;
  std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("e0.example"));
  ASSERT_THAT(receiver->WaitForRequests(1, kWait), SizeIs(1));  // e0 is in flight, held
  for (int i = 1; i <= 6; ++i) webhook->Notify(Expiring(absl::StrCat("e", i, ".example")));
  EXPECT_EQ(webhook->Stats(), Stats(0, 0, 3, 4));
  release.Notify();

  ASSERT_TRUE(WaitForStats(*webhook, Settled));
  EXPECT_EQ(webhook->Stats(), Stats(4, 0, 3, 0));
  std::vector<std::string> subjects;
  for (const ReceivedRequest& request : receiver->requests()) {
    subjects.push_back(ParseBody(request.body)->event.subject);
  }
  EXPECT_THAT(subjects, ElementsAre("e0.example", "e4.example", "e5.example", "e6.example"));
}

TEST_F(WebhookNotifierTest, WaitsTheCappedExponentialFullJitterBackoffOnTheInjectedClock) {
  std::unique_ptr<WebhookReceiver> receiver =
      StartReceiver([](int index) { return Answer{index < 4 ? 500 : 200}; });
  ASSERT_NE(receiver, nullptr);
  FakeClock clock(kT0);
  WebhookOptions options = Options(receiver->url());
  options.max_attempts = 6;
  options.initial_backoff = absl::Seconds(1);
  options.max_backoff = absl::Seconds(4);
  // The largest random value: each wait is (just about) its ceiling.
  std::unique_ptr<WebhookNotifier> webhook =
      MustCreate(options, WebhookDeps{clock, [] { return ~uint64_t{0}; }});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_THAT(receiver->WaitForRequests(1, kWait), SizeIs(1));
  size_t seen = 1;
  for (absl::Duration ceiling :
       {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4), absl::Seconds(4)}) {
    SCOPED_TRACE(absl::StrCat("after attempt ", seen));
    // The worker has taken the failure (and read the clock for its deadline).
    ASSERT_TRUE(WaitForStats(*webhook,
                             [seen](const WebhookStats& s) { return s.failed_attempts == seen; }));
    clock.Advance(ceiling - absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_THAT(receiver->requests(), SizeIs(seen)) << "retried before the backoff ended";
    clock.Advance(absl::Milliseconds(10));
    ASSERT_THAT(receiver->WaitForRequests(seen + 1, kWait), SizeIs(seen + 1));
    ++seen;
  }
  ASSERT_TRUE(WaitForStats(*webhook, Settled));
  EXPECT_EQ(webhook->Stats(), Stats(1, 4, 0, 0));
}

TEST_F(WebhookNotifierTest, AJitterOfZeroRetriesWithoutWaitingForTheClock) {
  std::unique_ptr<WebhookReceiver> receiver =
      StartReceiver([](int index) { return Answer{index < 2 ? 503 : 200}; });
  ASSERT_NE(receiver, nullptr);
  FakeClock clock(kT0);  // never advanced
  WebhookOptions options = Options(receiver->url());
  options.initial_backoff = absl::Hours(1);
  options.max_backoff = absl::Hours(1);
  std::unique_ptr<WebhookNotifier> webhook =
      MustCreate(options, WebhookDeps{clock, [] { return uint64_t{0}; }});
  ASSERT_NE(webhook, nullptr);

  webhook->Notify(Expiring("ms1.corp.example"));
  ASSERT_TRUE(WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered == 1; }));
  EXPECT_EQ(webhook->Stats(), Stats(1, 2, 0, 0));
}

// Redirects the process's stderr (where the logging facade writes) into a file while alive.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    file_ = std::tmpfile();
    if (saved_ >= 0 && file_ != nullptr) dup2(fileno(file_), STDERR_FILENO);
  }
  ~StderrCapture() { Stop(); }

  // Restores stderr and returns what was written meanwhile.
  std::string Stop() {
    if (saved_ < 0 || file_ == nullptr) return text_;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
    std::rewind(file_);
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file_)) > 0) text_.append(buffer, n);
    std::fclose(file_);
    file_ = nullptr;
    return text_;
  }

 private:
  int saved_ = -1;
  std::FILE* file_ = nullptr;
  std::string text_;
};

TEST_F(WebhookNotifierTest, NeverLogsTheKeyOrTheUrlsPathAndQuery) {
  static std::once_flag init_logging;
  std::call_once(init_logging,
                 [] { common::InitLogging("controller_notify_test", common::LogLevel::kDebug); });
  StderrCapture capture;
  {
    std::unique_ptr<WebhookReceiver> receiver = StartReceiver([](int index) {
      static const int kStatuses[] = {500, 200, 400, 503, 503};
      return Answer{index < 5 ? kStatuses[index] : 200};
    });
    ASSERT_NE(receiver, nullptr);
    WebhookOptions options = Options(receiver->url() + "?token=url-token-8c1e5a");
    options.max_attempts = 2;
    std::unique_ptr<WebhookNotifier> webhook = MustCreate(options, {clock_});
    ASSERT_NE(webhook, nullptr);
    webhook->Notify(Expiring("retried.example"));    // 500, then 200
    webhook->Notify(Expiring("refused.example"));    // 400
    webhook->Notify(Expiring("exhausted.example"));  // 503, 503
    ASSERT_TRUE(
        WaitForStats(*webhook, [](const WebhookStats& s) { return s.delivered + s.dropped == 3; }));
    webhook->Notify(Expiring("pending.example"));
    webhook->Shutdown(absl::ZeroDuration());
  }
  const std::string logs = capture.Stop();
  EXPECT_THAT(logs, HasSubstr("webhook ops"));  // the capture works
  EXPECT_THAT(logs, HasSubstr("http://127.0.0.1:"));
  EXPECT_THAT(logs, Not(HasSubstr(kKey)));
  EXPECT_THAT(logs, Not(HasSubstr("url-token-8c1e5a")));
  EXPECT_THAT(logs, Not(HasSubstr("/hook")));
}

}  // namespace
}  // namespace certfleet::controller::notify
