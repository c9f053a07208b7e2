#include "agent/client/backoff.h"

#include <algorithm>

#include "absl/random/distributions.h"

namespace certfleet::agent::client {

absl::Duration Backoff::Next() {
  absl::Duration ceiling = initial_;
  for (int i = 0; i < attempt_ && ceiling < max_; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max_);
  if (attempt_ < 62) ++attempt_;
  double fraction = absl::Uniform(random_, 0.0, 1.0);
  return absl::Milliseconds(static_cast<int64_t>(absl::ToDoubleMilliseconds(ceiling) * fraction));
}

}  // namespace certfleet::agent::client
