#pragma once

// Certificate issuance: self-signed roots, issuing CAs, leaf certificates. Used by the
// controller's built-in CA and by tests to build PKIs at test time.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto {

struct CertificateSpec {
  std::string subject_cn;
  std::string subject_o;  // optional organization
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // textual IPv4 / IPv6
  std::vector<std::string> uris;
  bool is_ca = false;
  int path_len = -1;  // CA only; -1 = unlimited
  // KeyUsage bits (model::KeyUsageBit). 0 = no extension. Marked critical when set.
  uint32_t key_usage = 0;
  std::vector<std::string> extended_key_usage;  // dotted OIDs; empty = no extension
  absl::Time not_before;
  absl::Time not_after;
  // DER INTEGER content bytes of the serial. Empty: 16 random bytes, top bit clear.
  std::string serial;
  std::string signature_digest = "SHA256";  // "SHA256", "SHA1", "SHA384", ...
  std::string
      template_name;  // when set, adds the AD CS template-name extension (1.3.6.1.4.1.311.20.2)
};

// Issues a certificate for `subject_key` (its public half) signed by `issuer_key`.
// `issuer_cert` null = self-signed (`subject_key` must then equal `issuer_key`).
// InvalidArgument for an inconsistent spec (not_after before not_before, bad IP text, unknown
// digest).
absl::StatusOr<X509Ptr> IssueCertificate(const CertificateSpec& spec, EVP_PKEY* subject_key,
                                         X509* issuer_cert, EVP_PKEY* issuer_key);

}  // namespace certfleet::common::crypto
