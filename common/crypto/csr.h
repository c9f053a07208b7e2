#pragma once

// PKCS#10 certificate requests: building one for a key (the agent's renewal, enrollment) and
// reading what one asks for (the controller's policy check before it signs).
//
//   CsrOptions options;
//   options.subject_cn = fqdn;
//   options.dns_names = {fqdn};
//   options.key_usage = model::kDigitalSignature | model::kKeyEncipherment;
//   options.extended_key_usage = {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"};
//   options.template_name = "SCOMCert";
//   CF_ASSIGN_OR_RETURN(X509ReqPtr csr, BuildCsr(key.get(), options));
//   std::string pem = CsrToPem(csr.get());
//   ...
//   CF_ASSIGN_OR_RETURN(X509ReqPtr received, CsrFromPem(pem));
//   CF_ASSIGN_OR_RETURN(CsrInfo info, InspectCsr(received.get()));   // signature checked
//
// Requested extensions travel in the PKCS#9 extensionRequest attribute. An AD CS template name
// travels the two ways certreq sends it (SCOM.md, "Requesting certificates"): the request
// attribute 1.3.6.1.4.1.311.13.2.1 (EnrollmentNameValuePair {"CertificateTemplate", name}, both
// BMPStrings) and the template-name extension 1.3.6.1.4.1.311.20.2 (a BMPString).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto {

// The request attribute AD CS reads name-value pairs from (szOID_ENROLLMENT_NAME_VALUE_PAIR).
inline constexpr absl::string_view kEnrollmentNameValuePairOid = "1.3.6.1.4.1.311.13.2.1";
// The certificate template name extension (szOID_ENROLL_CERTTYPE_EXTENSION), a BMPString.
inline constexpr absl::string_view kTemplateNameExtensionOid = "1.3.6.1.4.1.311.20.2";
// The certificate template v2 extension (szOID_CERTIFICATE_TEMPLATE): SEQUENCE { templateID
// OBJECT IDENTIFIER, majorVersion, minorVersion }. Read, never written.
inline constexpr absl::string_view kTemplateV2ExtensionOid = "1.3.6.1.4.1.311.21.7";

struct CsrOptions {
  std::string subject_cn;              // empty: an empty subject
  std::vector<std::string> dns_names;  // subjectAltName dNSName entries, in order
  std::vector<std::string> uris;       // subjectAltName URI entries, after the DNS names
  // model::KeyUsageBit mask (RFC 5280 bit numbers 0..8). 0: no KeyUsage extension; otherwise
  // requested as a critical extension.
  uint32_t key_usage = 0;
  // Dotted OIDs, requested in this order as a non-critical ExtendedKeyUsage. Empty: none.
  std::vector<std::string> extended_key_usage;
  // AD CS template name. Empty: neither the attribute nor the extension.
  std::string template_name;
  // "SHA256", "SHA384" or "SHA512" (any case). Ignored for Ed25519 / Ed448 keys, which hash
  // intrinsically.
  std::string signature_digest = "SHA256";
};

// A PKCS#10 request for `key` per `options`, signed with `key`. InvalidArgument for a null key,
// a common name OpenSSL refuses, a key_usage bit above 8, an EKU that is not a dotted OID, a
// template name that cannot be a BMPString, or a digest other than SHA256/SHA384/SHA512;
// Internal when OpenSSL fails otherwise.
absl::StatusOr<X509ReqPtr> BuildCsr(EVP_PKEY* key, const CsrOptions& options);
// PEM "CERTIFICATE REQUEST"; "" when OpenSSL cannot write it.
std::string CsrToPem(X509_REQ* csr);
// InvalidArgument when `pem` holds no CERTIFICATE REQUEST.
absl::StatusOr<X509ReqPtr> CsrFromPem(absl::string_view pem);

// What a request asks for.
struct CsrInfo {
  std::string subject_cn;  // the last CN of the subject
  std::vector<std::string> dns_names;
  std::vector<std::string> uris;
  std::string key_algorithm;  // "RSA", "RSA-PSS", "EC", "ED25519", "ED448", "DSA", "UNKNOWN"
  int key_bits = 0;
  // The digest of the request's signature: "SHA256", "SHA384", ... "" for EdDSA.
  std::string signature_digest;
  // The KeyUsage extension: model::KeyUsageBit mask (0 when absent) and its critical flag.
  bool has_key_usage = false;
  uint32_t key_usage = 0;
  bool key_usage_critical = false;
  // The ExtendedKeyUsage extension's OIDs, dotted, in request order.
  std::vector<std::string> extended_key_usage;
  // Every extension of the extensionRequest attribute, dotted OIDs in request order, so that a
  // policy can refuse any it does not know.
  std::vector<std::string> extension_oids;
  // Every attribute of the request (extensionRequest included), dotted OIDs in request order.
  std::vector<std::string> attribute_oids;
  // The AD CS template: the CertificateTemplate name-value pair of the attribute or the
  // template-name extension (they agree when both are present); failing both, the templateID
  // OID of the template v2 extension; "" when none.
  std::string template_name;
};

// Reads what `csr` asks for. InvalidArgument when: the public key cannot be decoded, the
// signature does not verify, the extensionRequest or its subjectAltName, KeyUsage or
// ExtendedKeyUsage cannot be decoded, an extension is requested twice, or the attribute and the
// extension name different templates.
absl::StatusOr<CsrInfo> InspectCsr(X509_REQ* csr);
// The request's public key (owned).
EvpPkeyPtr CsrPublicKey(X509_REQ* csr);

}  // namespace certfleet::common::crypto
