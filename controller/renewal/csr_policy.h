#pragma once

// The controller's policy for what a host may have signed (ARCHITECTURE.md, "Renewal job":
// policy checked). Its first rule: an agent can never get a certificate for another host. Every
// issuer relies on it: the renewal job checks each CSR before it submits it, the builtin issuer
// checks again before it signs, and certificates signed elsewhere (an officer's upload, an
// external program's answer) pass the same rules before certfleet hands them to a host.
//
//   CF_RETURN_IF_ERROR(CheckCsr(csr_pem, agent.fqdn, profile), "CSR of ", agent.id);
//   CF_ASSIGN_OR_RETURN(std::string chain, CheckIssuedChain(chain_pem, csr_pem, agent.fqdn,
//                                                           profile, clock.Now()));
//
// Names compare ASCII case-insensitively, exactly (no wildcard matching: a profile that lists
// "*.example.com" allows that literal name only). Thread-safe: pure functions.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/profile.h"

namespace certfleet::controller::renewal {

// The key sizes the policy accepts: at least profile.key_bits (a stronger key than the profile
// asks for is as good for SCOM), at most this (the largest key SCOM's documentation names and
// the largest profile ValidateProfile accepts; larger keys make every TLS handshake of the
// HealthService slower for no benefit).
inline constexpr int kMaxRsaKeyBits = 4096;

// How far a certificate signed elsewhere may start in the future and still count as currently
// valid (clock skew between that CA and the controller).
inline constexpr absl::Duration kClockSkew = absl::Minutes(5);

// Checks that `csr_pem` is a request the agent registered as `agent_fqdn` may have signed under
// `profile`. OK, or the first rule it breaks, with a message that says why:
//
// InvalidArgument: no CERTIFICATE REQUEST in `csr_pem`; its signature does not verify (a
//   tampered or badly signed request); an extension or attribute cannot be decoded, or is
//   requested twice.
// PermissionDenied (a name the agent may not have):
//   - the subject has no CN, or a CN other than `agent_fqdn`;
//   - a subjectAltName entry that is not a DNS name (IP address, URI, e-mail, UPN, ...);
//   - SAN DNS names other than `agent_fqdn` first, followed only by `agent_fqdn` again or names
//     in profile.extra_dns_names (a request without a subjectAltName extension is allowed: the
//     certreq INF of SCOM.md has none, and the builtin issuer adds the FQDN as the first SAN);
//   - an AD CS name-value pair other than CertificateTemplate (e.g. "SAN:upn=..." that a CA with
//     EDITF_ATTRIBUTESUBJECTALTNAME2 would turn into a name).
// FailedPrecondition (a key or extension the profile does not allow):
//   - a key that is not RSA (EC, RSA-PSS, ...), smaller than profile.key_bits or larger than
//     kMaxRsaKeyBits;
//   - an extension other than subjectAltName, keyUsage, extendedKeyUsage, basicConstraints
//     with CA:FALSE, subjectKeyIdentifier, the AD CS template name (1.3.6.1.4.1.311.20.2) and
//     template v2 (1.3.6.1.4.1.311.21.7);
//   - basicConstraints CA:TRUE; keyUsage with keyCertSign or cRLSign (other end-entity bits are
//     allowed: SCOM's INF asks for 0xf0, and the issued KeyUsage comes from the profile anyway);
//     an extendedKeyUsage OID the profile does not list;
//   - an AD CS template other than profile.template_name (case-insensitive), or any template
//     when the profile has none (a template named only by the v2 extension is known by its OID:
//     the profile must then name that OID);
//   - a request attribute other than extensionRequest (PKCS#9 or Microsoft's), the AD CS
//     name-value pairs, OS version, client information and CSP information attributes.
// The CSR's own signature digest is not judged: the issued certificate is signed per profile.
absl::Status CheckCsr(absl::string_view csr_pem, absl::string_view agent_fqdn,
                      const common::model::CertificateProfile& profile);

// Checks a certificate chain signed elsewhere (an officer's upload, an external CA's answer)
// for the request `csr_pem` of the agent `agent_fqdn` under `profile`, at time `now`, and
// returns it as PEM with the leaf first (the certificate for the request's key; the others
// keep their order). Errors:
//
// InvalidArgument: no certificate in `chain_pem`, or an undecodable one; no certificate for the
//   request's public key; `csr_pem` is not a request; the chain ends in a self-signed
//   certificate that the leaf does not chain to (through the certificates in between).
// PermissionDenied: a name the agent may not have, as in CheckCsr, with one difference: the
//   subject may lack a CN when the first SAN DNS name is `agent_fqdn` (SCOM matches the first
//   SAN DNS name, SCOM.md "What a usable certificate is"); some name must match.
// FailedPrecondition: a CA certificate; no KeyUsage extension or one without every bit of
//   profile.key_usage; no ExtendedKeyUsage extension or one without every OID of
//   profile.extended_key_usage; not currently valid (not_before after now + kClockSkew, or
//   not_after at or before now).
absl::StatusOr<std::string> CheckIssuedChain(absl::string_view chain_pem, absl::string_view csr_pem,
                                             absl::string_view agent_fqdn,
                                             const common::model::CertificateProfile& profile,
                                             absl::Time now);

}  // namespace certfleet::controller::renewal
