#include "controller/ca/manual/approval_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "controller/renewal/csr_policy.h"

namespace certfleet::controller::ca {
namespace {

using common::model::ApprovalState;

absl::Status CheckOfficer(absl::string_view officer) {
  if (officer.empty()) return absl::InvalidArgumentError("an officer's name is required");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<store::ApprovalRequestRecord>> ApprovalQueue::List(
    std::optional<ApprovalState> state) {
  return deps_.store.ListApprovalRequests(state);
}

absl::StatusOr<store::ApprovalRequestRecord> ApprovalQueue::Get(absl::string_view id) {
  return deps_.store.GetApprovalRequest(id);
}

absl::StatusOr<store::ApprovalRequestRecord> ApprovalQueue::LoadPending(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(store::ApprovalRequestRecord record, deps_.store.GetApprovalRequest(id));
  if (record.state != ApprovalState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("approval request ", id, " is ",
                     common::model::ApprovalStateName(record.state), ", not pending",
                     record.decided_by.empty() ? "" : absl::StrCat(" (", record.decided_by, ")")));
  }
  return record;
}

absl::StatusOr<store::ApprovalRequestRecord> ApprovalQueue::Approve(absl::string_view id,
                                                                    absl::string_view officer) {
  CF_RETURN_IF_ERROR(CheckOfficer(officer));
  CF_ASSIGN_OR_RETURN(store::ApprovalRequestRecord record, LoadPending(id));
  record.state = ApprovalState::kApproved;
  record.decided_by = std::string(officer);
  record.decided_at = deps_.clock.Now();
  CF_RETURN_IF_ERROR(deps_.store.UpdateApprovalRequest(record, ApprovalState::kPending),
                     "approving request ", id);
  common::LogInfo("approval request ", id, " (", record.fqdn, ", renewal ", record.renewal_id,
                  ") approved by ", officer);
  return record;
}

absl::StatusOr<store::ApprovalRequestRecord> ApprovalQueue::Deny(absl::string_view id,
                                                                 absl::string_view officer,
                                                                 absl::string_view reason) {
  CF_RETURN_IF_ERROR(CheckOfficer(officer));
  if (reason.empty()) {
    return absl::InvalidArgumentError("a reason is required to deny a request");
  }
  CF_ASSIGN_OR_RETURN(store::ApprovalRequestRecord record, LoadPending(id));
  record.state = ApprovalState::kDenied;
  record.decided_by = std::string(officer);
  record.reason = std::string(reason);
  record.decided_at = deps_.clock.Now();
  CF_RETURN_IF_ERROR(deps_.store.UpdateApprovalRequest(record, ApprovalState::kPending),
                     "denying request ", id);
  common::LogInfo("approval request ", id, " (", record.fqdn, ", renewal ", record.renewal_id,
                  ") denied by ", officer, ": ", reason);
  return record;
}

absl::StatusOr<std::string> ApprovalQueue::Export(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(store::ApprovalRequestRecord record, deps_.store.GetApprovalRequest(id));
  return record.csr_pem;
}

absl::StatusOr<store::ApprovalRequestRecord> ApprovalQueue::Fulfill(absl::string_view id,
                                                                    absl::string_view officer,
                                                                    absl::string_view chain_pem) {
  CF_RETURN_IF_ERROR(CheckOfficer(officer));
  CF_ASSIGN_OR_RETURN(store::ApprovalRequestRecord record, LoadPending(id));
  absl::StatusOr<store::RenewalRecord> renewal = deps_.store.GetRenewal(record.renewal_id);
  if (renewal.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(
        absl::StrCat("approval request ", id, ": its renewal ", record.renewal_id,
                     " is unknown, so there is no profile to check the certificate against"));
  }
  CF_RETURN_IF_ERROR(renewal.status(), "approval request ", id);
  const absl::Time now = deps_.clock.Now();
  CF_ASSIGN_OR_RETURN(
      std::string chain,
      renewal::CheckIssuedChain(chain_pem, record.csr_pem, record.fqdn, renewal->profile, now),
      "the certificate for approval request ", id);
  record.state = ApprovalState::kFulfilled;
  record.decided_by = std::string(officer);
  record.decided_at = now;
  record.chain_pem = std::move(chain);
  CF_RETURN_IF_ERROR(deps_.store.UpdateApprovalRequest(record, ApprovalState::kPending),
                     "fulfilling request ", id);
  common::LogInfo("approval request ", id, " (", record.fqdn, ", renewal ", record.renewal_id,
                  ") fulfilled by ", officer, " with a certificate signed elsewhere");
  return record;
}

}  // namespace certfleet::controller::ca
