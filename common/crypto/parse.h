#pragma once

// Reading certificates and keys from the files administrators have: PEM (several blocks per
// file, private keys included), DER, and PKCS#12 / PFX (RC2-40 as Windows 2012 R2 and older
// export it, 3DES, AES-256). For RC2-40 the OpenSSL `legacy` provider is loaded together with
// `default` (SCOM.md, "PFX files").

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/openssl_types.h"

namespace certfleet::common::crypto {

// What one file held. Certificates in file order; for PKCS#12 the one paired with the key
// first, then the other certificates of the bag.
struct ParsedFile {
  enum class Format { kPem, kDer, kPkcs12 };
  Format format = Format::kPem;
  std::vector<X509Ptr> certificates;
  std::vector<EvpPkeyPtr> private_keys;
};

// Detects the format of `contents` and parses it.
// - PEM: every CERTIFICATE block and every private key block (PKCS#8, RSA, EC; an encrypted
//   one needs `password`); other blocks are skipped. No certificate and no key: InvalidArgument.
// - DER: one X.509 certificate, else a PKCS#12 structure.
// - PKCS#12: needs `password` (an empty password is tried when none is given). A MAC that does
//   not verify: InvalidArgument "wrong password or corrupt PKCS#12". No password given when one
//   is needed: FailedPrecondition.
// Anything else: InvalidArgument "not a PEM, DER or PKCS#12 certificate file".
// Messages never contain the password.
absl::StatusOr<ParsedFile> ParseCertificateFile(absl::string_view contents,
                                                const std::optional<std::string>& password);

// Reads `path` and parses it as ParseCertificateFile does; errors name the path.
// NotFound when the file does not exist, PermissionDenied when it cannot be read.
absl::StatusOr<ParsedFile> ReadCertificateFile(const std::string& path,
                                               const std::optional<std::string>& password);

// Ensures the `legacy` and `default` providers are loaded (idempotent, thread-safe).
// FailedPrecondition if the legacy provider is not installed.
absl::Status EnsureLegacyProvider();

// One PEM "CERTIFICATE" block for `cert`.
std::string CertificateToPem(X509* cert);
// DER bytes of `cert`.
std::string CertificateToDer(X509* cert);
// First CERTIFICATE in `pem`; InvalidArgument when there is none.
absl::StatusOr<X509Ptr> CertificateFromPem(absl::string_view pem);
// Every CERTIFICATE in `pem`, in order; InvalidArgument when there is none.
absl::StatusOr<std::vector<X509Ptr>> CertificatesFromPem(absl::string_view pem);
absl::StatusOr<X509Ptr> CertificateFromDer(absl::string_view der);

// Builds a PKCS#12 file (for tests, the lab and exports). `legacy_rc2` selects what Windows
// 2012 R2 writes (certificates under pbeWithSHAAnd40BitRC2-CBC, key under 3DES); otherwise
// `aes` selects AES-256-CBC with SHA-256, else 3DES-SHA1.
enum class Pkcs12Cipher { kLegacyRc2, kTripleDes, kAes256 };
absl::StatusOr<std::string> BuildPkcs12(EVP_PKEY* key, X509* cert, const std::vector<X509*>& chain,
                                        absl::string_view password, Pkcs12Cipher cipher);

}  // namespace certfleet::common::crypto
