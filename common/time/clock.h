#pragma once

// The clock every expiry, window, backoff and jitter decision reads. Production code takes a
// `Clock&`; tests pass a FakeClock (tests/testing/fake_clock.h) and never sleep.

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace certfleet::common {

// Thread-safe: implementations may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // The current time.
  virtual absl::Time Now() const = 0;
  // Blocks the calling thread for `d` of this clock's time.
  virtual void SleepFor(absl::Duration d) = 0;
};

// The system's real-time clock.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
};

}  // namespace certfleet::common
