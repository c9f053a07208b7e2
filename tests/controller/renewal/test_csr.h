#pragma once

// Certificate requests made at test time, for the CSR policy and the issuers' tests: what an
// agent sends (ScomCsr), and requests no agent should send (custom extensions and attributes,
// tampered signatures). Helpers crash the test binary when OpenSSL fails (a broken test
// environment, not a test outcome).

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/crypto/csr.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::testing {

// What the agent's Renew command asks for under the "scom" profile: CN=fqdn, SAN DNS fqdn then
// `extra_dns`, KeyUsage digitalSignature + keyEncipherment, EKU server + client auth.
common::crypto::CsrOptions ScomCsrOptions(absl::string_view fqdn,
                                          std::vector<std::string> extra_dns = {});

// BuildCsr + CsrToPem.
std::string CsrPem(EVP_PKEY* key, const common::crypto::CsrOptions& options);

// ScomCsrOptions(fqdn) for `key`, as PEM.
std::string ScomCsrPem(EVP_PKEY* key, absl::string_view fqdn);

// A request built by hand: subject CN `cn` (none when empty), the extensions given as OpenSSL
// config name/value pairs ({"subjectAltName", "DNS:a,IP:10.0.0.1"}, {"1.2.3.4",
// "ASN1:UTF8String:x"}), and the attributes of `attributes`, signed with SHA-256.
struct RawAttribute {
  std::string oid;
  int type;         // V_ASN1_SEQUENCE, V_ASN1_UTF8STRING, ...
  std::string der;  // for V_ASN1_SEQUENCE: the whole DER; for strings: the bytes
};
std::string CustomCsrPem(EVP_PKEY* key, absl::string_view cn,
                         const std::vector<std::pair<std::string, std::string>>& extensions,
                         const std::vector<RawAttribute>& attributes = {});

// The DER of an AD CS EnrollmentNameValuePair {name, value} (two BMPStrings), for a
// RawAttribute of OID 1.3.6.1.4.1.311.13.2.1 and type V_ASN1_SEQUENCE.
std::string NameValuePairDer(absl::string_view name, absl::string_view value);

// `pem` with the bytes `from` replaced by `to` (same length) inside its DER: the signature no
// longer matches. Crashes when `from` does not occur.
std::string TamperCsrPem(absl::string_view pem, absl::string_view from, absl::string_view to);

}  // namespace certfleet::testing
