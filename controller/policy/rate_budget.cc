#include "controller/policy/rate_budget.h"

#include <algorithm>
#include <limits>

namespace certfleet::controller::policy {
namespace {

absl::Duration RefillInterval(double per_hour) {
  if (!(per_hour > 0)) return absl::InfiniteDuration();
  return absl::Hours(1) / per_hour;
}

}  // namespace

RateBudget::RateBudget(double per_hour, int burst, common::Clock& clock)
    : clock_(clock),
      burst_(std::max(burst, 1)),
      interval_(RefillInterval(per_hour)),
      full_at_(clock.Now()) {}

bool RateBudget::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (interval_ == absl::InfiniteDuration()) {
    if (taken_ >= burst_) return false;
    ++taken_;
    return true;
  }
  const absl::Time now = clock_.Now();
  // A token is there when the bucket is short of at most burst - 1 tokens.
  if (full_at_ - now > interval_ * (burst_ - 1)) return false;
  full_at_ = std::max(full_at_, now) + interval_;
  return true;
}

absl::Time RateBudget::NextTokenAt() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  if (interval_ == absl::InfiniteDuration()) {
    return taken_ < burst_ ? now : absl::InfiniteFuture();
  }
  return std::max(now, full_at_ - interval_ * (burst_ - 1));
}

double RateBudget::Available() {
  absl::MutexLock lock(&mu_);
  if (interval_ == absl::InfiniteDuration()) return burst_ - taken_;
  const absl::Time now = clock_.Now();
  if (full_at_ <= now) return burst_;
  if (interval_ == absl::ZeroDuration()) return burst_;
  return std::max(0.0, burst_ - absl::FDivDuration(full_at_ - now, interval_));
}

RateBudgets::RateBudgets(common::Clock& clock) : clock_(clock) {}

void RateBudgets::Set(const std::string& issuer, double per_hour, int burst) {
  absl::MutexLock lock(&mu_);
  budgets_[issuer] = std::make_unique<RateBudget>(per_hour, burst, clock_);
}

// The map's lock is held across the call into the budget, so Set cannot free a budget in use.
bool RateBudgets::TryAcquire(const std::string& issuer) {
  absl::MutexLock lock(&mu_);
  auto it = budgets_.find(issuer);
  return it == budgets_.end() || it->second->TryAcquire();
}

absl::Time RateBudgets::NextTokenAt(const std::string& issuer) {
  absl::MutexLock lock(&mu_);
  auto it = budgets_.find(issuer);
  return it == budgets_.end() ? clock_.Now() : it->second->NextTokenAt();
}

double RateBudgets::Available(const std::string& issuer) {
  absl::MutexLock lock(&mu_);
  auto it = budgets_.find(issuer);
  return it == budgets_.end() ? std::numeric_limits<double>::infinity() : it->second->Available();
}

}  // namespace certfleet::controller::policy
