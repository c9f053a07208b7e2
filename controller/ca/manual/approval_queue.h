#pragma once

// The officer's side of the "manual" issuer: list the requests waiting for a decision, look at
// one, approve it (the controller's CA signs it on the issuer's next poll), deny it with a
// reason, or export its CSR, have it signed elsewhere (an offline or stand-alone CA) and fulfil
// the request with that certificate.
//
//   ApprovalQueue queue({.store = *store, .clock = clock});
//   for (const auto& r : *queue.List(ApprovalState::kPending)) ...
//   CF_ASSIGN_OR_RETURN(auto approved, queue.Approve(id, "alice"));
//   CF_ASSIGN_OR_RETURN(std::string csr, queue.Export(id));
//   CF_ASSIGN_OR_RETURN(auto fulfilled, queue.Fulfill(id, "alice", chain_pem));
//
// Decisions are compare-and-set on the pending state: when two officers decide at once, one
// wins and the other gets FailedPrecondition naming the state the request is in.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/renewal.h"
#include "common/time/clock.h"
#include "controller/store/records.h"
#include "controller/store/store.h"

namespace certfleet::controller::ca {

struct ApprovalQueueDeps {
  store::Store& store;
  common::Clock& clock;
};

// Thread-safe. Calls block on the store: run them on an executor.
class ApprovalQueue {
 public:
  explicit ApprovalQueue(ApprovalQueueDeps deps) : deps_(deps) {}

  // Requests in `state` (nullopt = all), oldest first.
  absl::StatusOr<std::vector<store::ApprovalRequestRecord>> List(
      std::optional<common::model::ApprovalState> state);
  // NotFound when unknown.
  absl::StatusOr<store::ApprovalRequestRecord> Get(absl::string_view id);

  // pending -> approved, decided_by = officer, decided_at = now. Returns the stored request.
  // InvalidArgument for an empty officer; NotFound; FailedPrecondition when not pending.
  absl::StatusOr<store::ApprovalRequestRecord> Approve(absl::string_view id,
                                                       absl::string_view officer);
  // pending -> denied with `reason` (required: the renewal fails with it). Errors as Approve,
  // and InvalidArgument for an empty reason.
  absl::StatusOr<store::ApprovalRequestRecord> Deny(absl::string_view id, absl::string_view officer,
                                                    absl::string_view reason);

  // The request's CSR (PEM), to be signed elsewhere. NotFound when unknown.
  absl::StatusOr<std::string> Export(absl::string_view id);

  // pending -> fulfilled with `chain_pem`, a certificate signed elsewhere (leaf first, or the
  // leaf anywhere in the chain: it is moved first). The certificate is checked as
  // controller/renewal/csr_policy.h CheckIssuedChain does, against the request's CSR, its FQDN
  // and the profile of its renewal job: its public key is the CSR's, its names are the host's
  // own, its KeyUsage and ExtendedKeyUsage are what the profile requires, it is valid now.
  // Errors: CheckIssuedChain's (InvalidArgument, PermissionDenied, FailedPrecondition); as
  // Approve; FailedPrecondition when the request's renewal job is unknown (no profile to check
  // against).
  absl::StatusOr<store::ApprovalRequestRecord> Fulfill(absl::string_view id,
                                                       absl::string_view officer,
                                                       absl::string_view chain_pem);

 private:
  // Loads request `id`, checks that it is pending, and returns it.
  absl::StatusOr<store::ApprovalRequestRecord> LoadPending(absl::string_view id);

  ApprovalQueueDeps deps_;
};

}  // namespace certfleet::controller::ca
