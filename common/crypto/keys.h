#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto {

// A new RSA key of `bits` (2048..16384, else InvalidArgument).
absl::StatusOr<EvpPkeyPtr> GenerateRsaKey(int bits);
// A new EC key on P-256.
absl::StatusOr<EvpPkeyPtr> GenerateEcKey();

// Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). Treat the result as a secret.
std::string PrivateKeyToPem(EVP_PKEY* key);
// The first private key in `pem` (PKCS#8, RSA or EC); InvalidArgument when there is none.
absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem);

// DER SubjectPublicKeyInfo of `key` (works for private and public keys).
std::string PublicKeyDer(EVP_PKEY* key);
// True when `key` is the private key of `cert`'s public key.
bool KeyMatchesCertificate(EVP_PKEY* key, X509* cert);

}  // namespace certfleet::common::crypto
