#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace certfleet::common::model {

// The renewal job of one host (ARCHITECTURE.md, "Renewal job"):
// planned -> csr_requested -> csr_received -> policy_checked -> submitted -> [pending_approval]
// -> issued -> install_sent -> installed -> bind_sent -> verified -> done
// | rolled_back | failed (reason). With --no-bind, installed -> done.
enum class RenewalState {
  kPlanned,
  kCsrRequested,
  kCsrReceived,
  kPolicyChecked,
  kSubmitted,
  kPendingApproval,
  kIssued,
  kInstallSent,
  kInstalled,
  kBindSent,
  kVerified,
  kDone,
  kRolledBack,
  kFailed,
};

// "planned", "csr_requested", ..., "rolled_back", "failed".
absl::string_view RenewalStateName(RenewalState state);
std::optional<RenewalState> RenewalStateFromName(absl::string_view name);
// done, rolled_back, failed.
bool IsTerminal(RenewalState state);

// An officer's queue entry for a stand-alone CA ("manual" issuer).
enum class ApprovalState { kPending, kApproved, kDenied, kFulfilled };
absl::string_view ApprovalStateName(ApprovalState state);
std::optional<ApprovalState> ApprovalStateFromName(absl::string_view name);

}  // namespace certfleet::common::model
