#include "tools/sim/timer_queue.h"

#include <algorithm>
#include <utility>

namespace certfleet::sim {

TimerQueue::TimerQueue(common::Clock& clock) : clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
}

TimerQueue::~TimerQueue() { Shutdown(); }

void TimerQueue::Schedule(absl::Time when, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  if (entries_.empty() || when < entries_.top().when) wake_ = true;
  entries_.push(Entry{when, sequence_++, std::move(callback)});
}

void TimerQueue::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    while (!entries_.empty()) entries_.pop();
  }
  if (thread_.joinable()) thread_.join();
}

void TimerQueue::Loop() {
  while (true) {
    std::function<void()> due;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const absl::Time now = clock_.Now();
      if (!entries_.empty() && entries_.top().when <= now) {
        // priority_queue::top is const; the entry is popped right after its callback is moved
        // out, so nothing reads the moved-from callback.
        due = std::move(const_cast<Entry&>(entries_.top()).callback);
        entries_.pop();
      } else {
        absl::Duration wait = absl::Milliseconds(100);
        if (!entries_.empty()) wait = std::min(wait, entries_.top().when - now);
        wake_ = false;
        auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
        mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
        continue;
      }
    }
    due();
  }
}

}  // namespace certfleet::sim
