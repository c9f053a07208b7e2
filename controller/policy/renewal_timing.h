#pragma once

// When a certificate is due for renewal, and how long to wait after a failed attempt.
//
//   absl::Time due = RenewalDueAt(cert.not_before, cert.not_after, policy.timing,
//                                 absl::StrCat(agent.id, "/", cert.thumbprint));
//   if (now >= due) StartRenewal(...);
//   ...
//   next_try = failed_at + RetryDelay(config.retry, failures);
//
// Jitter is derived from a key, not drawn at random, so the due time of a certificate is the
// same on every controller restart and in every test, while a fleet whose certificates were all
// issued at the same moment still spreads its renewals over the jitter.
//
// Thread-safety: pure functions on values; callable from any thread.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::controller::policy {

struct RenewalTiming {
  // Renew once this fraction of the lifetime has passed; (0, 1].
  double lifetime_fraction = 2.0 / 3.0;
  // Renew this long before expiry at the latest; >= 0.
  absl::Duration lead_time = absl::Hours(24 * 30);
  // Spread: the due time moves EARLIER by [0, jitter); >= 0.
  absl::Duration jitter = absl::Hours(24);
};

// OK, or InvalidArgument naming the field for a lifetime_fraction outside (0, 1] (or NaN), a
// negative or infinite lead_time or jitter.
absl::Status ValidateRenewalTiming(const RenewalTiming& t);

// When the certificate valid from `not_before` to `not_after` is due for renewal: the earlier of
// not_before + lifetime_fraction * lifetime and not_after - lead_time, moved earlier by
// StableFraction(key) * jitter, and never earlier than not_before. For a certificate whose
// lifetime is shorter than the jitter, the jitter is a tenth of the lifetime instead. `key`
// identifies the certificate on its host (agent id and thumbprint, say). A certificate with
// not_after <= not_before is due at not_before. `timing` should pass ValidateRenewalTiming;
// should it not, a fraction above 1 counts as 1, one that is <= 0 or NaN as the default 2/3, and
// a negative duration as zero.
absl::Time RenewalDueAt(absl::Time not_before, absl::Time not_after, const RenewalTiming& timing,
                        absl::string_view key);

// A fraction in [0, 1) derived from `key` alone: the first 8 bytes of SHA-256(key) as a
// big-endian integer, scaled. The same on every platform and in every process.
double StableFraction(absl::string_view key);

struct RetryPolicy {
  absl::Duration initial = absl::Minutes(5);
  absl::Duration max = absl::Hours(6);
};

// The delay before retry number `failures` (1 = after the first failure):
// initial * 2^(failures - 1), capped at `max`. Zero for failures <= 0. Never overflows, however
// large `failures` is. Negative durations in `p` count as zero.
absl::Duration RetryDelay(const RetryPolicy& p, int failures);

}  // namespace certfleet::controller::policy
