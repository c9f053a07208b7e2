#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto {

struct CsrOptions {
  std::string subject_cn;
  std::vector<std::string> dns_names;  // subjectAltName dNSName entries, in order
  std::vector<std::string> uris;       // subjectAltName URI entries
};

// A PKCS#10 request for `key`, signed with SHA-256.
absl::StatusOr<X509ReqPtr> BuildCsr(EVP_PKEY* key, const CsrOptions& options);
std::string CsrToPem(X509_REQ* csr);
// InvalidArgument when `pem` holds no CERTIFICATE REQUEST.
absl::StatusOr<X509ReqPtr> CsrFromPem(absl::string_view pem);

// What a request asks for. InvalidArgument when its signature does not verify.
struct CsrInfo {
  std::string subject_cn;
  std::vector<std::string> dns_names;
  std::vector<std::string> uris;
  std::string key_algorithm;
  int key_bits = 0;
};
absl::StatusOr<CsrInfo> InspectCsr(X509_REQ* csr);
// The request's public key (owned).
EvpPkeyPtr CsrPublicKey(X509_REQ* csr);

}  // namespace certfleet::common::crypto
