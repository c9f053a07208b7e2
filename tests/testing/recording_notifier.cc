#include "tests/testing/recording_notifier.h"

#include <algorithm>
#include <utility>

namespace certfleet::testing {

using controller::notify::Event;

RecordingNotifier::RecordingNotifier(std::vector<std::string> events)
    : subscribed_(std::move(events)) {}

void RecordingNotifier::Notify(const Event& event) {
  if (!subscribed_.empty() &&
      std::find(subscribed_.begin(), subscribed_.end(), event.type) == subscribed_.end()) {
    return;
  }
  absl::MutexLock lock(&mu_);
  events_.push_back(event);
}

std::vector<Event> RecordingNotifier::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

std::vector<Event> RecordingNotifier::EventsOfType(absl::string_view type) const {
  absl::MutexLock lock(&mu_);
  std::vector<Event> matching;
  for (const Event& event : events_) {
    if (event.type == type) matching.push_back(event);
  }
  return matching;
}

std::vector<Event> RecordingNotifier::WaitForEvents(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto enough = [this, count]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= count; };
  mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  return events_;
}

void RecordingNotifier::Clear() {
  absl::MutexLock lock(&mu_);
  events_.clear();
}

}  // namespace certfleet::testing
