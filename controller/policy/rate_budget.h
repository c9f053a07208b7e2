#pragma once

// How many renewals the controller may send to each issuer: a token bucket per issuer, so a
// campaign over a thousand hosts does not flood a CA that can sign only so many requests an
// hour.
//
//   RateBudgets budgets(clock);
//   budgets.Set("builtin", /*per_hour=*/600, /*burst=*/50);
//   if (!budgets.TryAcquire(issuer)) retry_at = budgets.NextTokenAt(issuer);

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"

namespace certfleet::controller::policy {

// A token bucket: `per_hour` tokens refill continuously, at most `burst` are stored, and it
// starts full. A `per_hour` that is not positive means no refill (only the first `burst`
// tokens); a `burst` below 1 counts as 1. Time comes from `clock`, which must outlive the
// budget; if the clock goes back, the bucket waits for it to catch up instead of refilling
// twice.
//
// Thread-safe.
class RateBudget {
 public:
  RateBudget(double per_hour, int burst, common::Clock& clock);

  RateBudget(const RateBudget&) = delete;
  RateBudget& operator=(const RateBudget&) = delete;

  // Takes one token and returns true if one is available now; otherwise returns false and
  // takes nothing.
  bool TryAcquire();
  // Now when a token is available; otherwise the instant the next one will be (assuming no one
  // else takes it first); absl::InfiniteFuture() if the bucket is empty and never refills.
  absl::Time NextTokenAt();
  // The tokens in the bucket now, fractions included (for metrics).
  double Available();

 private:
  common::Clock& clock_;
  const int burst_;
  // The time one token takes to refill; absl::InfiniteDuration() when there is no refill.
  const absl::Duration interval_;

  absl::Mutex mu_;
  // The bucket is full from this instant on, and holds burst - (full_at_ - now) / interval_
  // tokens before it (the "theoretical arrival time" of GCRA). Each token taken moves it one
  // interval later. Exact Duration arithmetic, so a token is always there at NextTokenAt().
  absl::Time full_at_ ABSL_GUARDED_BY(mu_);
  // Tokens taken, for a bucket that never refills.
  int taken_ ABSL_GUARDED_BY(mu_) = 0;
};

// Budgets by issuer name. An issuer with no budget is unlimited. `clock` must outlive this.
//
// Thread-safe.
class RateBudgets {
 public:
  explicit RateBudgets(common::Clock& clock);

  RateBudgets(const RateBudgets&) = delete;
  RateBudgets& operator=(const RateBudgets&) = delete;

  // Gives `issuer` a full budget of `per_hour` and `burst` (see RateBudget), replacing the one
  // it had.
  void Set(const std::string& issuer, double per_hour, int burst);
  // RateBudget::TryAcquire of the issuer's budget; true for an issuer without one.
  bool TryAcquire(const std::string& issuer);
  // RateBudget::NextTokenAt of the issuer's budget; now for an issuer without one.
  absl::Time NextTokenAt(const std::string& issuer);
  // RateBudget::Available of the issuer's budget; infinity for an issuer without one.
  double Available(const std::string& issuer);

 private:
  common::Clock& clock_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<RateBudget>, std::less<>> budgets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::policy
