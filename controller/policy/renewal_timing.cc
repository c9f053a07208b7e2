#include "controller/policy/renewal_timing.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"

namespace certfleet::controller::policy {

absl::Status ValidateRenewalTiming(const RenewalTiming& t) {
  if (!(t.lifetime_fraction > 0 && t.lifetime_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lifetime_fraction ", t.lifetime_fraction, " is not in (0, 1]"));
  }
  if (t.lead_time < absl::ZeroDuration() || t.lead_time == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("lead_time ", absl::FormatDuration(t.lead_time),
                                                   " is not a finite, "
                                                   "non-negative duration"));
  }
  if (t.jitter < absl::ZeroDuration() || t.jitter == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("jitter ", absl::FormatDuration(t.jitter),
                                                   " is not a finite, non-negative duration"));
  }
  return absl::OkStatus();
}

absl::Time RenewalDueAt(absl::Time not_before, absl::Time not_after, const RenewalTiming& timing,
                        absl::string_view key) {
  if (not_after <= not_before) return not_before;
  const absl::Duration lifetime = not_after - not_before;
  const double fraction = timing.lifetime_fraction > 0 && timing.lifetime_fraction <= 1
                              ? timing.lifetime_fraction
                              : (timing.lifetime_fraction > 1 ? 1.0 : 2.0 / 3.0);
  const absl::Duration lead = std::max(timing.lead_time, absl::ZeroDuration());
  absl::Duration jitter = std::max(timing.jitter, absl::ZeroDuration());
  if (lifetime < jitter) jitter = lifetime / 10;

  absl::Time due = std::min(not_before + lifetime * fraction, not_after - lead);
  due -= jitter * StableFraction(key);
  return std::max(due, not_before);
}

double StableFraction(absl::string_view key) {
  const std::string digest = common::crypto::Sha256(key);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(digest[i]);
  // The top 53 bits fill a double's mantissa exactly, so the result is always below 1.
  return static_cast<double>(v >> 11) / static_cast<double>(uint64_t{1} << 53);
}

absl::Duration RetryDelay(const RetryPolicy& p, int failures) {
  if (failures <= 0) return absl::ZeroDuration();
  const absl::Duration initial = std::max(p.initial, absl::ZeroDuration());
  const absl::Duration cap = std::max(p.max, absl::ZeroDuration());
  // 2^62 times any non-zero duration is past every cap (absl::Duration saturates to infinity
  // rather than overflowing), so larger exponents need not be computed.
  const int exponent = std::min(failures - 1, 62);
  return std::min(initial * (int64_t{1} << exponent), cap);
}

}  // namespace certfleet::controller::policy
