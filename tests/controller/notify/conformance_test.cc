// Runs the Notifier conformance suite against every implementation: the recording fake, the
// fan-out (over recording notifiers and a webhook), and a webhook posting to a loopback receiver.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/notify/fanout_notifier.h"
#include "controller/notify/webhook_notifier.h"
#include "gtest/gtest.h"
#include "tests/controller/notify/notifier_conformance.h"
#include "tests/controller/notify/webhook_receiver.h"
#include "tests/testing/recording_notifier.h"

namespace certfleet::controller::notify {
namespace {

using ::certfleet::testing::RecordingNotifier;

// Parsed events of the requests `receiver` got, once it has `count` or `timeout` passed.
std::vector<Event> ReceivedEvents(const WebhookReceiver& receiver, size_t count,
                                  absl::Duration timeout) {
  std::vector<Event> events;
  for (const ReceivedRequest& request : receiver.WaitForRequests(count, timeout)) {
    std::optional<ParsedBody> parsed = ParseBody(request.body);
    EXPECT_TRUE(parsed.has_value()) << request.body;
    if (parsed.has_value()) events.push_back(std::move(parsed->event));
  }
  return events;
}

absl::StatusOr<std::unique_ptr<WebhookNotifier>> LoopbackWebhook(
    common::Clock& clock, const WebhookReceiver& receiver, std::vector<std::string> subscribed) {
  WebhookOptions options;
  options.name = "conformance";
  options.url = receiver.url();
  options.events = std::move(subscribed);
  options.hmac_key = "conformance-key";
  options.initial_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(10);
  return WebhookNotifier::Create(std::move(options), WebhookDeps{clock});
}

class RecordingHarness final : public NotifierHarness {
 public:
  absl::StatusOr<std::unique_ptr<Notifier>> NewNotifier(
      std::vector<std::string> subscribed) override {
    auto notifier = std::make_unique<RecordingNotifier>(std::move(subscribed));
    recording_ = notifier.get();
    return notifier;
  }
  std::vector<std::vector<Event>> WaitForEvents(size_t count, absl::Duration timeout) override {
    return {recording_->WaitForEvents(count, timeout)};
  }

 private:
  RecordingNotifier* recording_ = nullptr;
};

class WebhookHarness final : public NotifierHarness {
 public:
  absl::StatusOr<std::unique_ptr<Notifier>> NewNotifier(
      std::vector<std::string> subscribed) override {
    absl::StatusOr<std::unique_ptr<WebhookReceiver>> receiver = WebhookReceiver::Start();
    if (!receiver.ok()) return receiver.status();
    receiver_ = std::move(*receiver);
    absl::StatusOr<std::unique_ptr<WebhookNotifier>> webhook =
        LoopbackWebhook(clock_, *receiver_, std::move(subscribed));
    if (!webhook.ok()) return webhook.status();
    return std::unique_ptr<Notifier>(std::move(*webhook));
  }
  std::vector<std::vector<Event>> WaitForEvents(size_t count, absl::Duration timeout) override {
    return {ReceivedEvents(*receiver_, count, timeout)};
  }

 private:
  common::RealClock clock_;
  std::unique_ptr<WebhookReceiver> receiver_;
};

// A fan-out over a recording notifier, a webhook and another recording notifier, each
// subscribed to the same types: all three destinations must see the same events.
class FanoutHarness final : public NotifierHarness {
 public:
  absl::StatusOr<std::unique_ptr<Notifier>> NewNotifier(
      std::vector<std::string> subscribed) override {
    absl::StatusOr<std::unique_ptr<WebhookReceiver>> receiver = WebhookReceiver::Start();
    if (!receiver.ok()) return receiver.status();
    receiver_ = std::move(*receiver);
    absl::StatusOr<std::unique_ptr<WebhookNotifier>> webhook =
        LoopbackWebhook(clock_, *receiver_, subscribed);
    if (!webhook.ok()) return webhook.status();
    auto first = std::make_unique<RecordingNotifier>(subscribed);
    auto last = std::make_unique<RecordingNotifier>(subscribed);
    first_ = first.get();
    last_ = last.get();
    std::vector<std::unique_ptr<Notifier>> targets;
    targets.push_back(std::move(first));
    targets.push_back(std::move(*webhook));
    targets.push_back(nullptr);  // ignored
    targets.push_back(std::move(last));
    return std::make_unique<FanoutNotifier>(std::move(targets));
  }
  std::vector<std::vector<Event>> WaitForEvents(size_t count, absl::Duration timeout) override {
    return {first_->WaitForEvents(count, timeout), ReceivedEvents(*receiver_, count, timeout),
            last_->WaitForEvents(count, timeout)};
  }

 private:
  common::RealClock clock_;
  std::unique_ptr<WebhookReceiver> receiver_;
  RecordingNotifier* first_ = nullptr;
  RecordingNotifier* last_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(
    Implementations, NotifierConformanceTest,
    ::testing::Values(
        NotifierImplementation{
            "RecordingNotifier",
            [] { return std::unique_ptr<NotifierHarness>(new RecordingHarness); }},
        NotifierImplementation{"WebhookNotifier",
                               [] { return std::unique_ptr<NotifierHarness>(new WebhookHarness); }},
        NotifierImplementation{"FanoutNotifier",
                               [] { return std::unique_ptr<NotifierHarness>(new FanoutHarness); }}),
    NotifierImplementationName);

}  // namespace
}  // namespace certfleet::controller::notify
