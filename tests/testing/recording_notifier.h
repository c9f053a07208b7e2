#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/notify/notifier.h"

namespace certfleet::testing {

// A Notifier for tests of code that sends events: it keeps every event it is subscribed to in
// memory, in the order Notify was called, and lets the test wait for them.
//
//   RecordingNotifier notifier;
//   Scheduler scheduler(..., notifier);
//   ... ;
//   EXPECT_THAT(notifier.WaitForEvents(1, absl::Seconds(5)), ElementsAre(Field(&Event::type,
//       controller::notify::kRenewalFailed)));
//
// Thread-safe.
class RecordingNotifier final : public controller::notify::Notifier {
 public:
  // Records the events whose type is in `events`; empty = every event.
  explicit RecordingNotifier(std::vector<std::string> events = {});

  void Notify(const controller::notify::Event& event) override;

  // Every event recorded so far, oldest first.
  std::vector<controller::notify::Event> events() const;
  // The events of type `type` recorded so far, oldest first.
  std::vector<controller::notify::Event> EventsOfType(absl::string_view type) const;
  // Waits (in real time) until at least `count` events were recorded or `timeout` passed, then
  // returns every event recorded.
  std::vector<controller::notify::Event> WaitForEvents(size_t count, absl::Duration timeout) const;
  // Forgets the events recorded so far.
  void Clear();

 private:
  const std::vector<std::string> subscribed_;
  mutable absl::Mutex mu_;
  std::vector<controller::notify::Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::testing
