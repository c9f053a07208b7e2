#include "controller/ca/manual/manual_issuer.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/crypto/encoding.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::ca {
namespace {

using common::model::ApprovalState;
using store::ApprovalRequestRecord;

constexpr size_t kIdRandomBytes = 8;

std::string NewRequestId() {
  return absl::StrCat(
      "apr-",
      absl::AsciiStrToLower(common::crypto::HexUpper(common::crypto::RandomBytes(kIdRandomBytes))));
}

bool SameCsr(absl::string_view a, absl::string_view b) {
  return absl::StripAsciiWhitespace(a) == absl::StripAsciiWhitespace(b);
}

bool OfRenewal(const ApprovalRequestRecord& record, absl::string_view renewal_id) {
  return record.issuer == ManualIssuer::kName && record.renewal_id == renewal_id;
}

// The newest request of `renewal_id` for `csr_pem` among `records` (oldest first).
std::optional<ApprovalRequestRecord> FindRequest(const std::vector<ApprovalRequestRecord>& records,
                                                 absl::string_view renewal_id,
                                                 absl::string_view csr_pem) {
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (OfRenewal(*it, renewal_id) && SameCsr(it->csr_pem, csr_pem)) return *it;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<IssuanceResult> ManualIssuer::Submit(const IssuanceRequest& request) {
  std::optional<ApprovalRequestRecord> existing;
  {
    absl::MutexLock lock(&submit_mu_);
    CF_ASSIGN_OR_RETURN(std::vector<ApprovalRequestRecord> all,
                        deps_.store.ListApprovalRequests(std::nullopt),
                        "listing approval requests");
    existing = FindRequest(all, request.renewal_id, request.csr_pem);
    if (!existing.has_value()) {
      ApprovalRequestRecord record;
      record.id = NewRequestId();
      record.issuer = std::string(kName);
      record.renewal_id = request.renewal_id;
      record.agent_id = request.agent_id;
      record.fqdn = request.fqdn;
      record.csr_pem = request.csr_pem;
      record.profile_name = request.profile.name;
      record.state = ApprovalState::kPending;
      record.created_at = deps_.clock.Now();
      CF_RETURN_IF_ERROR(deps_.store.CreateApprovalRequest(record), "queueing request ", record.id);
      common::LogInfo("approval request ", record.id, " queued for ", record.fqdn, " (renewal ",
                      record.renewal_id, ", profile ", record.profile_name, ")");
      // Older requests of this renewal for another CSR can no longer be used: the agent holds
      // the key of the new one only.
      for (ApprovalRequestRecord& old : all) {
        if (!OfRenewal(old, request.renewal_id) || old.state != ApprovalState::kPending) continue;
        old.state = ApprovalState::kDenied;
        old.decided_by = std::string(kSystemOfficer);
        old.decided_at = record.created_at;
        old.reason =
            absl::StrCat("superseded by request ", record.id, " (a new CSR for the same renewal)");
        absl::Status superseded = deps_.store.UpdateApprovalRequest(old, ApprovalState::kPending);
        if (!superseded.ok()) {
          // An officer decided it meanwhile; the new request stands either way.
          common::LogWarning("approval request ", old.id,
                             " not marked superseded: ", superseded.ToString());
        }
      }
      existing = std::move(record);
    }
  }
  return Answer(*std::move(existing), request);
}

absl::StatusOr<IssuanceResult> ManualIssuer::Poll(const IssuanceRequest& request) {
  ApprovalRequestRecord record;
  if (!request.cookie.empty()) {
    CF_ASSIGN_OR_RETURN(record, deps_.store.GetApprovalRequest(request.cookie), "approval request ",
                        request.cookie);
    if (record.renewal_id != request.renewal_id) {
      return absl::InvalidArgumentError(absl::StrCat("approval request ", request.cookie,
                                                     " belongs to renewal ", record.renewal_id,
                                                     ", not ", request.renewal_id));
    }
  } else {
    CF_ASSIGN_OR_RETURN(std::vector<ApprovalRequestRecord> all,
                        deps_.store.ListApprovalRequests(std::nullopt),
                        "listing approval requests");
    std::optional<ApprovalRequestRecord> found =
        FindRequest(all, request.renewal_id, request.csr_pem);
    if (!found.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("renewal ", request.renewal_id, " has no approval request for its CSR"));
    }
    record = *std::move(found);
  }
  return Answer(std::move(record), request);
}

absl::StatusOr<IssuanceResult> ManualIssuer::Answer(ApprovalRequestRecord record,
                                                    const IssuanceRequest& request) {
  IssuanceResult result;
  switch (record.state) {
    case ApprovalState::kPending:
      result.kind = IssuanceResult::Kind::kPending;
      result.cookie = record.id;
      result.retry_after = options_.poll_interval;
      return result;
    case ApprovalState::kDenied:
      result.kind = IssuanceResult::Kind::kRejected;
      result.reason = absl::StrCat("request ", record.id, " denied by ", record.decided_by, ": ",
                                   record.reason);
      return result;
    case ApprovalState::kFulfilled:
      if (record.chain_pem.empty()) {
        return absl::DataLossError(
            absl::StrCat("approval request ", record.id, " is fulfilled but holds no chain"));
      }
      result.kind = IssuanceResult::Kind::kIssued;
      result.chain_pem = record.chain_pem;
      return result;
    case ApprovalState::kApproved:
      break;
  }
  if (!record.chain_pem.empty()) {
    result.kind = IssuanceResult::Kind::kIssued;
    result.chain_pem = record.chain_pem;
    return result;
  }
  // Sign what the officer approved: the stored CSR, for the stored host.
  IssuanceRequest approved = request;
  approved.renewal_id = record.renewal_id;
  approved.agent_id = record.agent_id;
  approved.fqdn = record.fqdn;
  approved.csr_pem = record.csr_pem;
  CF_ASSIGN_OR_RETURN(IssuanceResult signed_result, deps_.signer.Issue(approved, kName),
                      "signing approved request ", record.id);
  if (signed_result.kind != IssuanceResult::Kind::kIssued) return signed_result;
  record.chain_pem = signed_result.chain_pem;
  absl::Status stored = deps_.store.UpdateApprovalRequest(record, ApprovalState::kApproved);
  if (!stored.ok()) {
    // The certificate is recorded in the issuance log: the next Poll signs nothing new, it
    // finds that record (BuiltinIssuer is idempotent per renewal and key).
    return common::Annotate(stored, absl::StrCat("storing the chain of request ", record.id));
  }
  return signed_result;
}

}  // namespace certfleet::controller::ca
