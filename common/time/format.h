#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certfleet::common {

// RFC 3339 in UTC with whole seconds: "2026-11-22T02:21:11Z".
std::string FormatRfc3339(absl::Time t);

// Parses RFC 3339 ("2026-11-22T02:21:11Z", offsets and fractions allowed).
// InvalidArgument naming the text when it is not one.
absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view text);

// Parses a duration as operators write it: Go-style units ("90s", "1h30m") plus days ("30d").
// InvalidArgument naming the text for anything else, and for a negative duration.
absl::StatusOr<absl::Duration> ParseHumanDuration(absl::string_view text);

}  // namespace certfleet::common
