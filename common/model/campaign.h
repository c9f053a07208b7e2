#pragma once

// Campaigns (ARCHITECTURE.md, "Campaigns"): a selector picks hosts, waves roll the renewal out
// (a canary, then growing steps), a health gate sits between waves, a failure budget halts.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certfleet::common::model {

// planned -> running <-> paused; running -> halted (failure budget spent) -> running (resume);
// any but completed/cancelled -> cancelled; running -> completed (every wave passed its gate).
enum class CampaignState { kPlanned, kRunning, kPaused, kHalted, kCancelled, kCompleted };
// "planned", "running", "paused", "halted", "cancelled", "completed".
absl::string_view CampaignStateName(CampaignState state);
std::optional<CampaignState> CampaignStateFromName(absl::string_view name);
// cancelled, completed.
bool IsFinal(CampaignState state);

// One host of a campaign:
// pending -> running -> succeeded | rolled_back | failed; pending -> not_reached (offline past
// the deadline, or another renewal kept it busy) | cancelled (the campaign was cancelled first);
// succeeded -> reverting -> reverted | revert_failed (the operator rolled the wave back).
enum class TargetState {
  kPending,
  kRunning,
  kSucceeded,
  kRolledBack,
  kFailed,
  kNotReached,
  kCancelled,
  kReverting,
  kReverted,
  kRevertFailed,
};
absl::string_view TargetStateName(TargetState state);
std::optional<TargetState> TargetStateFromName(absl::string_view name);
// Counts against the failure budget: rolled_back, failed.
bool IsFailure(TargetState state);
// The host's part of its wave is over: anything but pending and running.
bool IsSettled(TargetState state);

// One step of a wave plan: "1" (hosts) or "10%" (of all targets), cumulative.
struct WaveStep {
  bool percent = false;
  double value = 0;  // hosts, or a percentage in (0, 100]
};

// Parses "1,10%,50%,100%". InvalidArgument naming the text and the bad step: empty, not a
// number, zero or negative, above 100%, or smaller than the step before it (steps are
// cumulative, so "10%,5%" is an error).
absl::StatusOr<std::vector<WaveStep>> ParseWaves(absl::string_view text);
// Where each wave ends, cumulative, for `hosts` targets: e.g. 1,10%,50%,100% of 40 hosts ->
// {1, 4, 20, 40}. A count is capped at `hosts`, a percentage rounds up; waves that would add no
// host are dropped; the last wave always reaches `hosts` (100% is implied). Empty when hosts = 0.
std::vector<int> WaveEnds(const std::vector<WaveStep>& steps, int hosts);

// "3" (hosts) or "5%" (of all targets).
struct FailureBudget {
  bool percent = false;
  double value = 0;
};
// InvalidArgument naming the text when it is neither a non-negative integer nor a percentage
// in [0, 100].
absl::StatusOr<FailureBudget> ParseFailureBudget(absl::string_view text);
// How many failures `budget` allows among `hosts` targets (a percentage rounds down).
int AllowedFailures(const FailureBudget& budget, int hosts);

}  // namespace certfleet::common::model
