#include "tests/controller/notify/notifier_conformance.h"

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/time/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::controller::notify {

std::string NotifierImplementationName(
    const ::testing::TestParamInfo<NotifierImplementation>& info) {
  return info.param.name;
}

void PrintTo(const Event& event, std::ostream* os) {
  *os << "{" << event.type << " at " << common::FormatRfc3339(event.at) << " subject \""
      << event.subject << "\" summary \"" << event.summary << "\" fields {";
  for (const auto& [key, value] : event.fields) *os << key << "=" << value << ";";
  *os << "}}";
}

void NotifierConformanceTest::SetUp() {
  harness_ = GetParam().make_harness();
  ASSERT_NE(harness_, nullptr);
}

void NotifierConformanceTest::TearDown() {
  notifier_.reset();
  harness_.reset();
}

Notifier& NotifierConformanceTest::MakeNotifier(std::vector<std::string> subscribed) {
  absl::StatusOr<std::unique_ptr<Notifier>> notifier = harness_->NewNotifier(std::move(subscribed));
  EXPECT_TRUE(notifier.ok()) << notifier.status();
  if (!notifier.ok() || *notifier == nullptr) std::abort();  // the harness itself is broken
  notifier_ = std::move(*notifier);
  return *notifier_;
}

namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21
constexpr absl::Duration kWait = absl::Seconds(20);

Event MakeEvent(const std::string& type, int n) {
  Event event;
  event.type = type;
  event.at = kT0 + absl::Seconds(n);
  event.subject = absl::StrCat("host", n, ".corp.example");
  event.summary = absl::StrCat("Event number ", n, " of type ", type, ".");
  event.fields = {{"agent_id", absl::StrCat("agent-", n)},
                  {"fqdn", event.subject},
                  {"n", absl::StrCat(n)},
                  {"thumbprint", std::string(40, 'A' + n % 6)}};
  return event;
}

TEST_P(NotifierConformanceTest, DeliversEachSubscribedEventOnceInOrderWithItsFields) {
  Notifier& notifier = MakeNotifier({kCertificateExpiring, kRenewalFailed});
  std::vector<Event> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back(MakeEvent(i % 2 == 0 ? kCertificateExpiring : kRenewalFailed, i));
    notifier.Notify(sent.back());
  }
  std::vector<std::vector<Event>> received = harness().WaitForEvents(sent.size(), kWait);
  ASSERT_THAT(received, Not(IsEmpty()));
  for (const std::vector<Event>& destination : received) {
    EXPECT_THAT(destination, ElementsAreArray(sent));
  }

  // One more event: had anything been delivered twice, it would show up before this one.
  sent.push_back(MakeEvent(kRenewalFailed, 99));
  notifier.Notify(sent.back());
  received = harness().WaitForEvents(sent.size(), kWait);
  for (const std::vector<Event>& destination : received) {
    EXPECT_THAT(destination, ElementsAreArray(sent));
  }
}

TEST_P(NotifierConformanceTest, IgnoresEventsOfTypesItIsNotSubscribedTo) {
  Notifier& notifier = MakeNotifier({kCampaignHalted});
  const Event halted1 = MakeEvent(kCampaignHalted, 1);
  const Event halted2 = MakeEvent(kCampaignHalted, 4);
  const Event halted3 = MakeEvent(kCampaignHalted, 7);
  notifier.Notify(halted1);
  notifier.Notify(MakeEvent(kCampaignFinished, 2));
  notifier.Notify(MakeEvent(kCertificateExpiring, 3));
  notifier.Notify(halted2);
  notifier.Notify(MakeEvent(kDriftDetected, 5));
  notifier.Notify(MakeEvent(kApprovalWaiting, 6));
  notifier.Notify(halted3);
  // Events arrive in order, so anything unsubscribed that got through arrives before halted3.
  const std::vector<std::vector<Event>> received = harness().WaitForEvents(3, kWait);
  ASSERT_THAT(received, Not(IsEmpty()));
  for (const std::vector<Event>& destination : received) {
    EXPECT_THAT(destination, ElementsAre(halted1, halted2, halted3));
  }
}

TEST_P(NotifierConformanceTest, WithoutASubscriptionDeliversEveryType) {
  Notifier& notifier = MakeNotifier({});
  std::vector<Event> sent;
  int n = 0;
  for (const char* type : {kCertificateExpiring, kDriftDetected, kRenewalFailed, kCampaignHalted,
                           kCampaignFinished, kApprovalWaiting, "custom.type"}) {
    sent.push_back(MakeEvent(type, n++));
    notifier.Notify(sent.back());
  }
  const std::vector<std::vector<Event>> received = harness().WaitForEvents(sent.size(), kWait);
  ASSERT_THAT(received, Not(IsEmpty()));
  for (const std::vector<Event>& destination : received) {
    EXPECT_THAT(destination, ElementsAreArray(sent));
  }
}

TEST_P(NotifierConformanceTest, EventsFromSeveralThreadsEachArriveOnceInTheirThreadsOrder) {
  Notifier& notifier = MakeNotifier({});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&notifier, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Event event = MakeEvent(kDriftDetected, i);
        event.fields["thread"] = absl::StrCat(t);
        notifier.Notify(event);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  const std::vector<std::vector<Event>> received =
      harness().WaitForEvents(kThreads * kPerThread, kWait);
  ASSERT_THAT(received, Not(IsEmpty()));
  for (const std::vector<Event>& destination : received) {
    ASSERT_THAT(destination, SizeIs(kThreads * kPerThread));
    std::map<int, int> next;  // thread -> the n it must send next
    for (const Event& event : destination) {
      int thread = -1;
      int n = -1;
      ASSERT_TRUE(absl::SimpleAtoi(event.fields.at("thread"), &thread));
      ASSERT_TRUE(absl::SimpleAtoi(event.fields.at("n"), &n));
      EXPECT_EQ(n, next[thread]) << "thread " << thread;
      next[thread] = n + 1;
    }
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread) << "thread " << t;
  }
}

TEST_P(NotifierConformanceTest, KeepsAwkwardTextAndEmptyValuesIntact) {
  Notifier& notifier = MakeNotifier({kRenewalFailed});
  Event event;
  event.type = kRenewalFailed;
  event.at = kT0;
  event.subject = "";
  event.summary = "Renewal of \"ms1\" failed:\n\tC:\\ProgramData \u00e9\u2713 <b>&amp;</b>";
  event.fields = {{"empty", ""},
                  {"json", R"({"k": ["v", 1], "esc": "\u0000"})"},
                  {"multi\nline key", "tab\there"},
                  {"reason", std::string(4096, 'x')}};
  notifier.Notify(event);
  const std::vector<std::vector<Event>> received = harness().WaitForEvents(1, kWait);
  ASSERT_THAT(received, Not(IsEmpty()));
  for (const std::vector<Event>& destination : received) {
    EXPECT_THAT(destination, ElementsAre(event));
  }
}

}  // namespace
}  // namespace certfleet::controller::notify
