#pragma once

// A certificate profile: what the certreq INF of SCOM.md ("Requesting certificates") says, as
// data. The agent generates the key and CSR by it; the controller checks the CSR against it
// and the issuer signs by it.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/model/certificate.h"

namespace certfleet::common::model {

struct CertificateProfile {
  std::string name;
  std::string key_algorithm = "RSA";  // RSA only: SCOM cannot use anything else
  int key_bits = 2048;                // 2048, 3072 or 4096
  std::string signature_hash = "SHA256";
  // Subject CN is always the host's FQDN; the first SAN DNS name is the FQDN too, these follow.
  std::vector<std::string> extra_dns_names;
  uint32_t key_usage = kDigitalSignature | kKeyEncipherment;  // KeyUsageBit mask, critical
  std::vector<std::string> extended_key_usage = {std::string(kServerAuthOid),
                                                 std::string(kClientAuthOid)};
  absl::Duration validity = absl::Hours(24 * 365);
  // AD CS template name; when set the CSR carries it as the CertificateTemplate request
  // attribute (1.3.6.1.4.1.311.13.2.1) and the template-name extension (1.3.6.1.4.1.311.20.2).
  std::string template_name;
};

// The built-in profile "scom": the seed document's INF (RSA 2048, SHA-256, KeyUsage
// digitalSignature + keyEncipherment, EKU server + client authentication, one year).
CertificateProfile ScomProfile();

// InvalidArgument naming the field: empty name, a key that is not RSA 2048/3072/4096, a hash
// other than SHA256/SHA384/SHA512, a key usage without digitalSignature and keyEncipherment, an
// EKU list without both server and client authentication, validity outside 1 day..5 years, a
// malformed extra DNS name.
absl::Status ValidateProfile(const CertificateProfile& profile);

}  // namespace certfleet::common::model
