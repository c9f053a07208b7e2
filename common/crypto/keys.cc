#include "common/crypto/keys.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "absl/strings/str_cat.h"
#include "common/crypto/pem_blocks.h"

namespace certfleet::common::crypto {

absl::StatusOr<EvpPkeyPtr> GenerateRsaKey(int bits) {
  if (bits < 2048 || bits > 16384) {
    return absl::InvalidArgumentError(
        absl::StrCat("RSA key size ", bits, " is outside 2048..16384 bits"));
  }
  EvpPkeyPtr key(EVP_RSA_gen(static_cast<unsigned int>(bits)));
  if (key == nullptr) {
    return absl::InternalError(absl::StrCat("RSA key generation failed: ", DrainOpenSslErrors()));
  }
  return key;
}

absl::StatusOr<EvpPkeyPtr> GenerateEcKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) {
    return absl::InternalError(absl::StrCat("EC key generation failed: ", DrainOpenSslErrors()));
  }
  return key;
}

std::string PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    DrainOpenSslErrors();
    return "";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  // The BIO's buffer held the key; wipe it before it is freed.
  OPENSSL_cleanse(data, static_cast<size_t>(len));
  return pem;
}

absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem) {
  auto blocks = internal::ReadPemBlocks(pem);
  if (!blocks.ok()) return blocks.status();
  for (const internal::PemBlock& block : *blocks) {
    if (internal::IsPrivateKeyBlock(block.name)) {
      return internal::DecodePrivateKeyBlock(block, std::nullopt);
    }
  }
  return absl::InvalidArgumentError("no private key in PEM text");
}

std::string PublicKeyDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) {
    DrainOpenSslErrors();
    return "";
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool KeyMatchesCertificate(EVP_PKEY* key, X509* cert) {
  if (key == nullptr || cert == nullptr) return false;
  EVP_PKEY* cert_key = X509_get0_pubkey(cert);
  bool match = cert_key != nullptr && EVP_PKEY_eq(cert_key, key) == 1;
  ERR_clear_error();
  return match;
}

}  // namespace certfleet::common::crypto
