#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "controller/ca/issuer.h"

namespace certfleet::controller::ca {

// Wraps an issuer and reports how long each Submit and Poll took (for the issuer latency
// metric). Same contract and thread-safety as the wrapped issuer, which must outlive this.
class TimedIssuer final : public Issuer {
 public:
  using Observer = std::function<void(const std::string& issuer, absl::Duration took)>;
  TimedIssuer(Issuer& inner, Observer observer) : inner_(inner), observer_(std::move(observer)) {}

  std::string Name() const override { return inner_.Name(); }
  absl::StatusOr<IssuanceResult> Submit(const IssuanceRequest& request) override {
    const absl::Time start = absl::Now();
    auto result = inner_.Submit(request);
    observer_(inner_.Name(), absl::Now() - start);
    return result;
  }
  absl::StatusOr<IssuanceResult> Poll(const IssuanceRequest& request) override {
    const absl::Time start = absl::Now();
    auto result = inner_.Poll(request);
    observer_(inner_.Name(), absl::Now() - start);
    return result;
  }

 private:
  Issuer& inner_;
  Observer observer_;
};

}  // namespace certfleet::controller::ca
