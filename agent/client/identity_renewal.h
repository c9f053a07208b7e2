#pragma once

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"
#include "agent/client/backoff.h"

namespace certfleet::agent::client {

// When the agent renews its identity (ARCHITECTURE.md, "Trust and identity"): at a point drawn
// uniformly from [earliest, latest] fractions of the identity's validity period, counted from its
// not_before (about half its lifetime, spread so that a fleet enrolled at once does not renew at
// once). After a failed attempt, again after an exponential backoff with full jitter, at least
// Options::min_retry later, but never more than half of the validity left, so that several
// attempts fit before the identity expires.
//
//   IdentityRenewal renewal(options, random);
//   renewal.Reset(not_before, not_after);
//   if (renewal.Due(clock.Now())) {
//     if (renewed) renewal.Reset(new_not_before, new_not_after);
//     else renewal.Failed(clock.Now());
//   }
//
// Not thread-safe. Reads no clock: callers pass the time, so every decision is testable.
class IdentityRenewal {
 public:
  struct Options {
    double earliest = 0.45;  // of the validity period; 0 <= earliest <= latest <= 1
    double latest = 0.55;
    absl::Duration retry_initial = absl::Seconds(5);  // the first backoff ceiling
    absl::Duration retry_max = absl::Minutes(10);     // the largest backoff ceiling
    absl::Duration min_retry = absl::Seconds(1);
  };

  // `random` must outlive this object; it draws the renewal point and the backoff delays.
  IdentityRenewal(Options options, absl::BitGenRef random);

  // Starts over for an identity valid from `not_before` to `not_after`: draws the renewal time
  // and resets the backoff.
  void Reset(absl::Time not_before, absl::Time not_after);

  // Records a failed attempt at `now` and returns the time of the next one.
  absl::Time Failed(absl::Time now);

  // The time of the next attempt; InfiniteFuture before the first Reset.
  absl::Time due_at() const { return due_at_; }
  absl::Time not_after() const { return not_after_; }
  bool Due(absl::Time now) const { return now >= due_at_; }
  // The identity is no longer valid: it can only be recovered by re-enrollment.
  bool Expired(absl::Time now) const { return now >= not_after_; }
  // Failed attempts since the last Reset.
  int failures() const { return failures_; }

 private:
  Options options_;
  absl::BitGenRef random_;
  Backoff backoff_;
  absl::Time due_at_ = absl::InfiniteFuture();
  absl::Time not_after_ = absl::InfiniteFuture();
  int failures_ = 0;
};

}  // namespace certfleet::agent::client
