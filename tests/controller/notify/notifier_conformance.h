#pragma once

// The behaviour every Notifier must have (controller/notify/notifier.h): one value-parameterized
// suite, instantiated once per implementation. Each event of a subscribed type arrives once at
// each destination, with its fields, in the order it was notified; events of other types never
// arrive. To run it against an implementation:
//
//   class MyHarness : public NotifierHarness { ... };
//   INSTANTIATE_TEST_SUITE_P(
//       MyNotifier, NotifierConformanceTest,
//       ::testing::Values(NotifierImplementation{
//           "MyNotifier", [] { return std::unique_ptr<NotifierHarness>(new MyHarness); }}),
//       NotifierImplementationName);
//
// and link the cf_controller_notify_conformance object library into the test executable.
// Events in the suite carry whole-second times (the precision of the webhook wire format).

#include <cstddef>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/notify/notifier.h"
#include "gtest/gtest.h"

namespace certfleet::controller::notify {

// One implementation under test: makes notifiers and watches where they deliver. Destroyed at
// the end of the test, after the notifier it made.
class NotifierHarness {
 public:
  virtual ~NotifierHarness() = default;
  // A new notifier that delivers the event types in `subscribed` (empty = all) to this
  // harness's destinations. Called once per test.
  virtual absl::StatusOr<std::unique_ptr<Notifier>> NewNotifier(
      std::vector<std::string> subscribed) = 0;
  // Waits (real time) until every destination has received at least `count` events or
  // `timeout` passed; returns, per destination, the events it received, in arrival order.
  virtual std::vector<std::vector<Event>> WaitForEvents(size_t count, absl::Duration timeout) = 0;
};

struct NotifierImplementation {
  std::string name;  // the instantiation's test-name suffix: letters, digits and '_'
  std::function<std::unique_ptr<NotifierHarness>()> make_harness;
};

inline void PrintTo(const NotifierImplementation& implementation, std::ostream* os) {
  *os << implementation.name;
}

// For INSTANTIATE_TEST_SUITE_P: names each instantiation after NotifierImplementation::name.
std::string NotifierImplementationName(
    const ::testing::TestParamInfo<NotifierImplementation>& info);

// gtest's printer for failures.
void PrintTo(const Event& event, std::ostream* os);

class NotifierConformanceTest : public ::testing::TestWithParam<NotifierImplementation> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Creates the test's notifier (once), subscribed to `subscribed`.
  Notifier& MakeNotifier(std::vector<std::string> subscribed);
  NotifierHarness& harness() { return *harness_; }

  std::unique_ptr<NotifierHarness> harness_;
  std::unique_ptr<Notifier> notifier_;  // destroyed before harness_
};

}  // namespace certfleet::controller::notify
