#pragma once

// The "manual" issuer: a stand-alone CA's pending queue (SCOM.md, "Requesting certificates").
// Every request waits for an officer (ApprovalQueue, approval_queue.h): approved requests are
// signed by the controller's CA through the builtin issuer's signing path; an officer may
// instead fulfil a request with a certificate signed elsewhere; denied requests are rejected
// with the officer's reason.
//
//   ManualIssuer manual({.store = *store, .signer = builtin, .clock = clock}, {});
//   result = manual.Submit(request);   // kPending, cookie = approval request id
//   ... an officer approves ...
//   result = manual.Poll(request);     // kIssued

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/ca/builtin/builtin_issuer.h"
#include "controller/ca/issuer.h"
#include "controller/store/store.h"

namespace certfleet::controller::ca {

struct ManualIssuerDeps {
  store::Store& store;
  // Signs approved requests (records them with issuer "manual").
  BuiltinIssuer& signer;
  common::Clock& clock;
};

struct ManualIssuerOptions {
  // IssuanceResult::retry_after of a pending answer: how soon asking again is useful.
  absl::Duration poll_interval = absl::Minutes(1);
};

// Thread-safe. Calls block on the store (and on signing): run them on an executor. Submits are
// serialized within the process so that one renewal never gets two requests for one CSR; a
// second controller process sharing the store is not coordinated with.
class ManualIssuer final : public Issuer {
 public:
  static constexpr absl::string_view kName = "manual";
  // decided_by of a request this issuer itself denies (superseded by a newer CSR).
  static constexpr absl::string_view kSystemOfficer = "certfleet";

  ManualIssuer(ManualIssuerDeps deps, ManualIssuerOptions options)
      : deps_(deps), options_(options) {}

  std::string Name() const override { return std::string(kName); }

  // Queues the request for an officer (ApprovalRequestRecord, state pending) and answers
  // kPending with cookie = the approval request's id. A renewal that already has a request for
  // the same CSR gets that request's answer instead (as Poll), so a repeated Submit never queues
  // twice. A request of the same renewal for another CSR that is still pending is denied
  // ("superseded") when the new one is queued. Errors: the Store's, annotated.
  absl::StatusOr<IssuanceResult> Submit(const IssuanceRequest& request) override;

  // Answers for the approval request named by request.cookie (or, without a cookie, the
  // renewal's request for request.csr_pem):
  //   pending   -> kPending (same cookie)
  //   denied    -> kRejected with the officer's reason ("denied by <officer>: <reason>")
  //   approved  -> the CSR the officer approved (the stored one) is signed through
  //                BuiltinIssuer::Issue (recorded with issuer "manual"), the chain is stored on
  //                the request, kIssued; later Polls answer with the stored chain
  //   fulfilled -> kIssued with the chain the officer supplied
  // NotFound when the cookie names no request (or no request exists without one);
  // InvalidArgument when the request belongs to another renewal.
  absl::StatusOr<IssuanceResult> Poll(const IssuanceRequest& request) override;

 private:
  absl::StatusOr<IssuanceResult> Answer(store::ApprovalRequestRecord record,
                                        const IssuanceRequest& request);

  ManualIssuerDeps deps_;
  ManualIssuerOptions options_;
  absl::Mutex submit_mu_;
};

}  // namespace certfleet::controller::ca
