#pragma once

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace certfleet::agent::client {

// Exponential backoff with full jitter: the n-th delay is uniform in [0, min(max, initial*2^n)].
// Spreads a fleet's reconnects after a controller restart instead of synchronising them.
// Not thread-safe.
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, absl::BitGenRef random)
      : initial_(initial), max_(max), random_(random) {}

  absl::Duration Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  absl::BitGenRef random_;
  int attempt_ = 0;
};

}  // namespace certfleet::agent::client
