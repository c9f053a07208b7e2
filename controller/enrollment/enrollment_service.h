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
  // An agent id or FQDN: makes a re-enrollment token bound to that agent and its FQDN, which
  // only that agent may use (Enroll with EnrollRequest::agent_id) and which never creates an
  // agent. Empty: a join token for a new agent.
  std::string agent;
};

struct CreatedToken {
  std::string token;  // a secret: hand it to the caller, never log it
  absl::Time expires_at;
  std::string agent_id;  // a re-enrollment token: the agent it is bound to; else empty
  std::string fqdn;      // the FQDN the token is bound to; empty: any
};

struct EnrollRequest {
  std::string token;
  std::string csr_pem;
  std::string fqdn;
  std::string platform;
  std::string agent_version;
  // Re-enrollment: the id of the existing agent (from its state directory). Empty: a new agent.
  std::string agent_id;
};

// A signed agent identity.
struct EnrollResult {
  std::string agent_id;
  std::string identity_chain_pem;  // leaf first
  std::string ca_bundle_pem;
  std::string identity_serial;
  absl::Time identity_not_after;
};

// Join tokens and agent enrollment (ARCHITECTURE.md, "Trust and identity").
//
// Thread-safe. Methods block (store writes, signing): call them from an executor.
class EnrollmentService {
 public:
  static constexpr absl::Duration kMaxTokenTtl = absl::Hours(24 * 7);

  EnrollmentService(store::Store& store, ca::ControllerPki& pki, common::Clock& clock)
      : store_(store), pki_(pki), clock_(clock) {}

  // InvalidArgument for a TTL outside (0, 7 days], a malformed FQDN or label, and for labels or
  // an FQDN other than the agent's given with `agent`; NotFound when `agent` names no agent.
  absl::StatusOr<CreatedToken> CreateToken(const CreateTokenRequest& request);

  // Checks the token (single use, unexpired, FQDN binding) and the CSR, creates the agent and
  // signs its identity. Unauthenticated for an unknown token; FailedPrecondition for a used or
  // expired one; PermissionDenied for a token bound to another FQDN, and for a re-enrollment
  // token (it never creates an agent); InvalidArgument for a bad CSR, FQDN or a token whose CA
  // pin is not this controller's. The token is consumed only when the agent is created.
  //
  // With request.agent_id set, re-enrolls that existing agent instead: the token must be a
  // re-enrollment token bound to it (PermissionDenied otherwise: a join token, or one bound to
  // another agent), request.fqdn must be the agent's registered FQDN and the CSR must name
  // nothing else (CheckIdentityCsr; PermissionDenied otherwise); NotFound when the agent is
  // unknown. The agent keeps its id and labels; only its identity changes. The other errors are
  // as above, and the token is consumed only when the new identity is recorded.
  absl::StatusOr<EnrollResult> Enroll(const EnrollRequest& request);

  // Signs a new identity for the existing agent `agent_id` (the verified caller) for the key of
  // `csr_pem`, with the same agent id and registered FQDN, and records it. InvalidArgument for a
  // malformed CSR, a bad signature or a weak key; PermissionDenied when the CSR names another
  // host or identity (CheckIdentityCsr) or the agent is no longer enrolled.
  absl::StatusOr<EnrollResult> RenewIdentity(absl::string_view agent_id, absl::string_view csr_pem);

 private:
  // Enroll for request.agent_id, with the token whose secret hashes to `token_hash`; `fqdn` is
  // request.fqdn in lowercase.
  absl::StatusOr<EnrollResult> Reenroll(const EnrollRequest& request, absl::string_view token_hash,
                                        absl::string_view fqdn);

  store::Store& store_;
  ca::ControllerPki& pki_;
  common::Clock& clock_;
};

// Checks that the CSR for an identity of agent `agent_id` registered as `fqdn` names nothing
// else: its subject CN, when set, is `fqdn` (ASCII case-insensitive), its DNS subjectAltNames
// are `fqdn` and its URI subjectAltNames are the agent's certfleet://agent/<id>. The identity's
// names come from the controller, never from the CSR; this refuses a request that asks for
// another host. InvalidArgument for a malformed CSR or a bad signature; PermissionDenied for a
// name that is not the agent's.
absl::Status CheckIdentityCsr(absl::string_view csr_pem, absl::string_view agent_id,
                              absl::string_view fqdn);

// True for a syntactically valid DNS host name (labels of letters, digits and '-', dots
// between, at most 253 characters).
bool IsValidFqdn(absl::string_view fqdn);

}  // namespace certfleet::controller::enrollment
