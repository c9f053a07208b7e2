#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto/openssl_types.h"
#include "common/model/certificate.h"

namespace certfleet::common::crypto {

// Reads every field of model::CertificateInfo from `cert`. `has_private_key` is copied into
// the result (the caller knows whether a key is linked). InvalidArgument for a certificate
// whose fields cannot be decoded (e.g. a validity time OpenSSL cannot convert).
absl::StatusOr<model::CertificateInfo> DescribeCertificate(X509* cert, bool has_private_key);

// Verifies that `leaf` chains to one of `roots` at time `at`, using `intermediates` as
// untrusted helpers. OK when it does; FailedPrecondition with OpenSSL's reason otherwise.
absl::Status VerifyChain(X509* leaf, const std::vector<X509*>& intermediates,
                         const std::vector<X509*>& roots, absl::Time at);

}  // namespace certfleet::common::crypto
