#pragma once

// A strict reader of the Prometheus text exposition format 0.0.4, for tests: it accepts what
// Registry::Render promises to write and rejects everything else, so a test can check the syntax
// of every line and then look at the values.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::controller::metrics {

struct ParsedSample {
  std::string name;                           // as written: "x", "x_bucket", "x_sum", "x_count"
  std::map<std::string, std::string> labels;  // values unescaped
  double value = 0;
};

struct ParsedFamily {
  std::string name;
  std::string help;  // unescaped
  std::string type;  // counter, gauge, histogram
  std::vector<ParsedSample> samples;
};

// Parses `text`: for each family a "# HELP name text" line, then "# TYPE name type", then its
// samples `name{label="value",...} value`; every line ends with '\n'; no blank lines; label and
// metric names valid; escapes only \\, \" and \n (in HELP only \\ and \n); a value that is a
// decimal or exponent float, +Inf, -Inf or NaN; a sample's name equal to its family's (or, for a
// histogram, the family's name plus _bucket with an le label, _sum or _count); family names
// unique. InvalidArgument naming the line number and the line otherwise.
absl::StatusOr<std::vector<ParsedFamily>> ParseExposition(absl::string_view text);

}  // namespace certfleet::controller::metrics
