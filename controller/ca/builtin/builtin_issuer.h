#pragma once

// The "builtin" issuer: the controller's own issuing CA (ControllerPki) signs SCOM
// certificates per profile, at once.
//
//   BuiltinIssuer builtin({.pki = *pki, .store = *store, .clock = clock});
//   CF_ASSIGN_OR_RETURN(IssuanceResult result, builtin.Submit(request));
//   // result.kind == kIssued: result.chain_pem = leaf, issuing CA, root

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "controller/ca/controller_pki.h"
#include "controller/ca/issuer.h"
#include "controller/store/store.h"

namespace certfleet::controller::ca {

struct BuiltinIssuerDeps {
  ControllerPki& pki;
  store::Store& store;
  common::Clock& clock;
};

// What a certificate of the builtin issuer is:
// - subject CN = the agent's registered FQDN; subjectAltName DNS = the FQDN first, then the
//   other DNS names of the CSR (which the CSR policy allowed), without repeats;
// - the CSR's public key; critical KeyUsage = profile.key_usage; ExtendedKeyUsage =
//   profile.extended_key_usage; the AD CS template-name extension when the profile names one;
//   subject and authority key identifiers;
// - valid from now - 5 minutes (clock skew of hosts) for profile.validity, cut at the issuing
//   CA's own end (a certificate may not outlive its issuer);
// - signed with profile.signature_hash by the issuing CA; serial: 16 random bytes (126 bits of
//   entropy: the top bit is clear so the serial is positive and the next bit is set so that all
//   16 bytes are encoded);
// - recorded in the Store (RecordIssuance) before it is returned; a certificate that could not
//   be recorded is never handed out.
//
// Idempotent per renewal: a Submit (or Poll) for a renewal that already has a recorded,
// unexpired certificate for the same public key answers with that certificate instead of
// signing again. A new key for the same renewal gets a new certificate. Concurrent calls for
// the same renewal are serialized in this process (one signs, the others find its record); a
// second controller process sharing the store is not coordinated with.
//
// Thread-safe. Calls block (store, signing): run them on an executor.
class BuiltinIssuer final : public Issuer {
 public:
  static constexpr absl::string_view kName = "builtin";
  // How far back the validity starts.
  static constexpr absl::Duration kBackdate = absl::Minutes(5);

  explicit BuiltinIssuer(BuiltinIssuerDeps deps) : deps_(deps) {}

  std::string Name() const override { return std::string(kName); }

  // Checks the CSR again (controller/renewal/csr_policy.h) and signs it. Results: kIssued, or
  // kRejected with the policy's reason when the CSR breaks a rule (the builtin CA never signs a
  // name the agent may not have, whoever calls it). Errors: InvalidArgument for an empty
  // renewal_id (idempotency is per renewal); FailedPrecondition for a profile
  // that ValidateProfile refuses or an issuing CA that has expired; the Store's errors (e.g.
  // Unavailable), annotated "recording the issuance"; Internal when OpenSSL fails.
  absl::StatusOr<IssuanceResult> Submit(const IssuanceRequest& request) override;
  // The same as Submit: the builtin issuer never leaves a request pending.
  absl::StatusOr<IssuanceResult> Poll(const IssuanceRequest& request) override;

  // The signing path, shared with the manual issuer once an officer approved a request: as
  // Submit, recording the issuance with IssuanceRecord::issuer = `issuer_name`.
  absl::StatusOr<IssuanceResult> Issue(const IssuanceRequest& request,
                                       absl::string_view issuer_name);

 private:
  absl::StatusOr<IssuanceResult> IssueOnce(const IssuanceRequest& request,
                                           absl::string_view issuer_name);

  BuiltinIssuerDeps deps_;
  absl::Mutex mu_;
  // Renewals with an Issue in progress.
  absl::flat_hash_set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::ca
