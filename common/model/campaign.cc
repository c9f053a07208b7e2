#include "common/model/campaign.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace certfleet::common::model {
namespace {

constexpr std::pair<CampaignState, absl::string_view> kCampaignNames[] = {
    {CampaignState::kPlanned, "planned"},     {CampaignState::kRunning, "running"},
    {CampaignState::kPaused, "paused"},       {CampaignState::kHalted, "halted"},
    {CampaignState::kCancelled, "cancelled"}, {CampaignState::kCompleted, "completed"},
};

constexpr std::pair<TargetState, absl::string_view> kTargetNames[] = {
    {TargetState::kPending, "pending"},     {TargetState::kRunning, "running"},
    {TargetState::kSucceeded, "succeeded"}, {TargetState::kRolledBack, "rolled_back"},
    {TargetState::kFailed, "failed"},       {TargetState::kNotReached, "not_reached"},
    {TargetState::kCancelled, "cancelled"}, {TargetState::kReverting, "reverting"},
    {TargetState::kReverted, "reverted"},   {TargetState::kRevertFailed, "revert_failed"},
};

// "12" or "12.5%" -> {percent, value}; nullopt when malformed.
std::optional<std::pair<bool, double>> ParseAmount(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  bool percent = absl::ConsumeSuffix(&text, "%");
  double value = 0;
  if (text.empty() || !absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return std::nullopt;
  }
  if (!percent && value != std::floor(value)) return std::nullopt;
  return std::make_pair(percent, value);
}

}  // namespace

absl::string_view CampaignStateName(CampaignState state) {
  for (const auto& [s, n] : kCampaignNames) {
    if (s == state) return n;
  }
  return "unknown";
}

std::optional<CampaignState> CampaignStateFromName(absl::string_view name) {
  for (const auto& [s, n] : kCampaignNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool IsFinal(CampaignState state) {
  return state == CampaignState::kCancelled || state == CampaignState::kCompleted;
}

absl::string_view TargetStateName(TargetState state) {
  for (const auto& [s, n] : kTargetNames) {
    if (s == state) return n;
  }
  return "unknown";
}

std::optional<TargetState> TargetStateFromName(absl::string_view name) {
  for (const auto& [s, n] : kTargetNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool IsFailure(TargetState state) {
  return state == TargetState::kRolledBack || state == TargetState::kFailed;
}

bool IsSettled(TargetState state) {
  return state != TargetState::kPending && state != TargetState::kRunning;
}

absl::StatusOr<std::vector<WaveStep>> ParseWaves(absl::string_view text) {
  std::vector<WaveStep> steps;
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("waves: empty (expected e.g. 1,10%,50%,100%)");
  }
  // Cumulative: compare like with like (counts with counts, percentages with percentages).
  double last_count = 0, last_percent = 0;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    auto amount = ParseAmount(part);
    if (!amount) {
      return absl::InvalidArgumentError(absl::StrCat("waves '", text, "': '", part,
                                                     "' is neither a host count nor a percentage"));
    }
    auto [percent, value] = *amount;
    if (value <= 0 || (percent && value > 100)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "waves '", text, "': '", part, "' must be above 0", percent ? " and at most 100%" : ""));
    }
    double& last = percent ? last_percent : last_count;
    if (value < last) {
      return absl::InvalidArgumentError(
          absl::StrCat("waves '", text, "': '", part,
                       "' is smaller than a step before it (steps are cumulative)"));
    }
    last = value;
    steps.push_back(WaveStep{percent, value});
  }
  return steps;
}

std::vector<int> WaveEnds(const std::vector<WaveStep>& steps, int hosts) {
  std::vector<int> ends;
  if (hosts <= 0) return ends;
  for (const WaveStep& step : steps) {
    int end = step.percent ? static_cast<int>(std::ceil(step.value * hosts / 100.0 - 1e-9))
                           : static_cast<int>(std::min<double>(step.value, hosts));
    end = std::clamp(end, 1, hosts);
    if (!ends.empty() && end <= ends.back()) continue;
    ends.push_back(end);
  }
  if (ends.empty() || ends.back() < hosts) ends.push_back(hosts);
  return ends;
}

absl::StatusOr<FailureBudget> ParseFailureBudget(absl::string_view text) {
  auto amount = ParseAmount(text);
  if (!amount || amount->second < 0 || (amount->first && amount->second > 100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "failure budget '", text, "': expected a host count (3) or a percentage (5%)"));
  }
  return FailureBudget{amount->first, amount->second};
}

int AllowedFailures(const FailureBudget& budget, int hosts) {
  if (!budget.percent) return static_cast<int>(budget.value);
  return static_cast<int>(std::floor(budget.value * hosts / 100.0 + 1e-9));
}

}  // namespace certfleet::common::model
