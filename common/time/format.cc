#include "common/time/format.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common {

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an RFC 3339 time: ", err));
  }
  return t;
}

absl::StatusOr<absl::Duration> ParseHumanDuration(absl::string_view text) {
  std::string s(absl::StripAsciiWhitespace(text));
  absl::Duration d;
  if (!s.empty() && (s.back() == 'd' || s.back() == 'D')) {
    int64_t days = 0;
    if (!absl::SimpleAtoi(absl::string_view(s).substr(0, s.size() - 1), &days) || days < 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a duration"));
    }
    return absl::Hours(24 * days);
  }
  if (!absl::ParseDuration(s, &d) || s.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration (use forms such as 30s, 15m, 1h30m, 30d)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration '", text, "' is negative"));
  }
  return d;
}

}  // namespace certfleet::common
