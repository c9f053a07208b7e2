#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"

namespace certfleet::sim {

// Runs callbacks at given times on one thread of its own: the simulator's reconnect backoffs,
// heartbeats and connection pacing for thousands of agents, without a thread per agent.
// Callbacks must be short and never block (they start gRPC operations or post work to an
// executor); callbacks due at the same time run in the order they were scheduled.
//
// Thread-safe. Times are read from `clock`; the thread waits in slices of at most 100 ms of real
// time, so a clock that jumps is noticed.
class TimerQueue {
 public:
  explicit TimerQueue(common::Clock& clock);
  // Shutdown().
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `callback` at `when` (at once when that has passed). Dropped after Shutdown.
  void Schedule(absl::Time when, std::function<void()> callback);

  // Drops every callback not yet run, waits for a running one, and joins the thread. Idempotent;
  // must not be called from a callback.
  void Shutdown();

 private:
  struct Entry {
    absl::Time when;
    uint64_t sequence;
    std::function<void()> callback;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.when != b.when ? a.when > b.when : a.sequence > b.sequence;
    }
  };
  void Loop();

  common::Clock& clock_;
  absl::Mutex mu_;
  std::priority_queue<Entry, std::vector<Entry>, Later> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // An entry earlier than the one the thread waits for was scheduled.
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace certfleet::sim
