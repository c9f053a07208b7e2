#include "common/model/command.h"

#include <utility>

namespace certfleet::common::model {
namespace {

constexpr std::pair<CommandKind, absl::string_view> kKindNames[] = {
    {CommandKind::kScan, "scan"},     {CommandKind::kImport, "import"},
    {CommandKind::kRepair, "repair"}, {CommandKind::kRebind, "rebind"},
    {CommandKind::kTrust, "trust"},   {CommandKind::kRemove, "remove"},
    {CommandKind::kRenew, "renew"},   {CommandKind::kInstall, "install"},
};

constexpr std::pair<CommandState, absl::string_view> kStateNames[] = {
    {CommandState::kQueued, "queued"},   {CommandState::kSent, "sent"},
    {CommandState::kRunning, "running"}, {CommandState::kSucceeded, "succeeded"},
    {CommandState::kFailed, "failed"},   {CommandState::kCancelled, "cancelled"},
    {CommandState::kExpired, "expired"},
};

}  // namespace

absl::string_view CommandKindName(CommandKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<CommandKind> CommandKindFromName(absl::string_view name) {
  for (const auto& [k, n] : kKindNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

static_assert(std::variant_size_v<CommandPayload> == 8,
              "CommandPayload and CommandKind must list the same kinds in the same order");

CommandKind KindOf(const CommandPayload& payload) {
  return static_cast<CommandKind>(payload.index());
}

absl::string_view CommandStateName(CommandState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<CommandState> CommandStateFromName(absl::string_view name) {
  for (const auto& [s, n] : kStateNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool IsFinal(CommandState state) {
  return state == CommandState::kSucceeded || state == CommandState::kFailed ||
         state == CommandState::kCancelled || state == CommandState::kExpired;
}

}  // namespace certfleet::common::model
