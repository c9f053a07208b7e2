#pragma once

// An Issuer turns a checked CSR into a certificate chain: the controller's own CA ("builtin"),
// a stand-alone CA with an officer ("manual"), or an external program ("command") such as
// `openssl ca`, easy-rsa or `certreq -submit` on a Windows host for AD CS.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/profile.h"

namespace certfleet::controller::ca {

struct IssuanceRequest {
  std::string renewal_id;  // stable across Submit and Poll
  std::string agent_id;
  std::string fqdn;
  std::string csr_pem;  // already checked by the CSR policy
  common::model::CertificateProfile profile;
  std::string cookie;  // Poll: the cookie of the previous kPending answer
};

struct IssuanceResult {
  enum class Kind {
    kIssued,      // chain_pem holds the certificate, leaf first
    kPending,     // ask again later with `cookie` (e.g. waiting for an officer)
    kRejected,    // final refusal, `reason` says why
    kRetryLater,  // the CA is unreachable or busy; submit again after `retry_after`
  };
  Kind kind = Kind::kRejected;
  std::string chain_pem;
  std::string cookie;
  std::string reason;
  absl::Duration retry_after = absl::ZeroDuration();
};

// Thread-safe. Methods block (signing, running a program): call them from an executor.
class Issuer {
 public:
  virtual ~Issuer() = default;

  // The name operators select it by ("builtin", "manual", or a configured name).
  virtual std::string Name() const = 0;

  // Asks for a certificate. A CA's answer (issued, pending, rejected, retry later) is a
  // result, not an error; errors are for broken configuration or state (FailedPrecondition,
  // Internal, DataLoss). Submitting the same renewal_id twice must not issue twice without a
  // record (the builtin issuer returns the recorded certificate).
  virtual absl::StatusOr<IssuanceResult> Submit(const IssuanceRequest& request) = 0;

  // Asks again about a pending request (request.cookie set). Same results as Submit.
  virtual absl::StatusOr<IssuanceResult> Poll(const IssuanceRequest& request) = 0;
};

}  // namespace certfleet::controller::ca
