#include "common/model/renewal.h"

#include <utility>

namespace certfleet::common::model {
namespace {

constexpr std::pair<RenewalState, absl::string_view> kRenewalNames[] = {
    {RenewalState::kPlanned, "planned"},
    {RenewalState::kCsrRequested, "csr_requested"},
    {RenewalState::kCsrReceived, "csr_received"},
    {RenewalState::kPolicyChecked, "policy_checked"},
    {RenewalState::kSubmitted, "submitted"},
    {RenewalState::kPendingApproval, "pending_approval"},
    {RenewalState::kIssued, "issued"},
    {RenewalState::kInstallSent, "install_sent"},
    {RenewalState::kInstalled, "installed"},
    {RenewalState::kBindSent, "bind_sent"},
    {RenewalState::kVerified, "verified"},
    {RenewalState::kDone, "done"},
    {RenewalState::kRolledBack, "rolled_back"},
    {RenewalState::kFailed, "failed"},
};

constexpr std::pair<ApprovalState, absl::string_view> kApprovalNames[] = {
    {ApprovalState::kPending, "pending"},
    {ApprovalState::kApproved, "approved"},
    {ApprovalState::kDenied, "denied"},
    {ApprovalState::kFulfilled, "fulfilled"},
};

}  // namespace

absl::string_view RenewalStateName(RenewalState state) {
  for (const auto& [s, n] : kRenewalNames) {
    if (s == state) return n;
  }
  return "unknown";
}

std::optional<RenewalState> RenewalStateFromName(absl::string_view name) {
  for (const auto& [s, n] : kRenewalNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool IsTerminal(RenewalState state) {
  return state == RenewalState::kDone || state == RenewalState::kRolledBack ||
         state == RenewalState::kFailed;
}

absl::string_view ApprovalStateName(ApprovalState state) {
  for (const auto& [s, n] : kApprovalNames) {
    if (s == state) return n;
  }
  return "unknown";
}

std::optional<ApprovalState> ApprovalStateFromName(absl::string_view name) {
  for (const auto& [s, n] : kApprovalNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

}  // namespace certfleet::common::model
