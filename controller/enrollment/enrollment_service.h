#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/ca/controller_pki.h"
#include "controller/store/store.h"

namespace certfleet::controller::enrollment {

struct CreateTokenRequest {
  absl::Duration ttl = absl::Hours(1);
  std::string fqdn;  // empty: any host may use the token
  std::map<std::string, std::string> labels;
  std::string created_by;
};

struct CreatedToken {
  std::string token;  // a secret: hand it to the caller, never log it
  absl::Time expires_at;
};

struct EnrollRequest {
  std::string token;
  std::string csr_pem;
  std::string fqdn;
  std::string platform;
  std::string agent_version;
};

struct EnrollResult {
  std::string agent_id;
  std::string identity_chain_pem;
  std::string ca_bundle_pem;
};

// Join tokens and agent enrollment (ARCHITECTURE.md, "Trust and identity").
//
// Thread-safe. Methods block (store writes, signing): call them from an executor.
class EnrollmentService {
 public:
  static constexpr absl::Duration kMaxTokenTtl = absl::Hours(24 * 7);

  EnrollmentService(store::Store& store, ca::ControllerPki& pki, common::Clock& clock)
      : store_(store), pki_(pki), clock_(clock) {}

  // InvalidArgument for a TTL outside (0, 7 days], a malformed FQDN or label.
  absl::StatusOr<CreatedToken> CreateToken(const CreateTokenRequest& request);

  // Checks the token (single use, unexpired, FQDN binding) and the CSR, creates the agent and
  // signs its identity. Unauthenticated for an unknown token; FailedPrecondition for a used or
  // expired one; PermissionDenied for a token bound to another FQDN; InvalidArgument for a bad
  // CSR, FQDN or a token whose CA pin is not this controller's. The token is consumed only when
  // the agent is created.
  absl::StatusOr<EnrollResult> Enroll(const EnrollRequest& request);

 private:
  store::Store& store_;
  ca::ControllerPki& pki_;
  common::Clock& clock_;
};

// True for a syntactically valid DNS host name (labels of letters, digits and '-', dots
// between, at most 253 characters).
bool IsValidFqdn(absl::string_view fqdn);

}  // namespace certfleet::controller::enrollment
