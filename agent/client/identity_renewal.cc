#include "agent/client/identity_renewal.h"

#include <algorithm>

#include "absl/random/distributions.h"

namespace certfleet::agent::client {

IdentityRenewal::IdentityRenewal(Options options, absl::BitGenRef random)
    : options_(options),
      random_(random),
      backoff_(options.retry_initial, options.retry_max, random) {}

void IdentityRenewal::Reset(absl::Time not_before, absl::Time not_after) {
  not_after_ = not_after;
  failures_ = 0;
  backoff_.Reset();
  const absl::Duration lifetime = std::max(not_after - not_before, absl::ZeroDuration());
  const double fraction =
      options_.earliest >= options_.latest
          ? options_.earliest
          : absl::Uniform(absl::IntervalClosed, random_, options_.earliest, options_.latest);
  due_at_ = not_before + lifetime * fraction;
}

absl::Time IdentityRenewal::Failed(absl::Time now) {
  ++failures_;
  absl::Duration wait = backoff_.Next();
  const absl::Duration left = not_after_ - now;
  if (left > absl::ZeroDuration()) wait = std::min(wait, left / 2);
  due_at_ = now + std::max(wait, options_.min_retry);
  return due_at_;
}

}  // namespace certfleet::agent::client
