#include "common/crypto/pem_blocks.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace certfleet::common::crypto::internal {

bool LooksLikePem(absl::string_view text) { return absl::StrContains(text, "-----BEGIN "); }

absl::StatusOr<std::vector<PemBlock>> ReadPemBlocks(absl::string_view text) {
  std::vector<PemBlock> blocks;
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory reading PEM");
  ERR_clear_error();
  while (true) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      unsigned long err = ERR_peek_last_error();
      bool at_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
      std::string detail = DrainOpenSslErrors();
      if (at_end) break;
      return absl::InvalidArgumentError(absl::StrCat("PEM block ", blocks.size() + 1,
                                                     " is truncated or malformed (", detail, ")"));
    }
    PemBlock block;
    block.name = name;
    block.header = header;
    block.data.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    blocks.push_back(std::move(block));
  }
  return blocks;
}

bool IsCertificateBlock(absl::string_view name) {
  return name == "CERTIFICATE" || name == "X509 CERTIFICATE" || name == "TRUSTED CERTIFICATE";
}

bool IsPrivateKeyBlock(absl::string_view name) {
  return name == "PRIVATE KEY" || name == "ENCRYPTED PRIVATE KEY" || name == "RSA PRIVATE KEY" ||
         name == "EC PRIVATE KEY" || name == "DSA PRIVATE KEY";
}

int PasswordCallback(char* buf, int size, int /*rwflag*/, void* u) {
  if (u == nullptr || size <= 0) return -1;
  const auto* password = static_cast<const std::string*>(u);
  int n = static_cast<int>(password->size());
  if (n > size) return -1;
  std::memcpy(buf, password->data(), static_cast<size_t>(n));
  return n;
}

absl::StatusOr<EvpPkeyPtr> DecodePrivateKeyBlock(const PemBlock& block,
                                                 const std::optional<std::string>& password) {
  bool encrypted =
      block.name == "ENCRYPTED PRIVATE KEY" || absl::StrContains(block.header, "ENCRYPTED");
  if (encrypted && !password.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", block.name, " is encrypted; a password is needed"));
  }
  // Re-encode the block and let OpenSSL's PEM reader handle every key format and encryption.
  BioPtr out(BIO_new(BIO_s_mem()));
  if (out == nullptr || PEM_write_bio(out.get(), block.name.c_str(), block.header.c_str(),
                                      reinterpret_cast<const unsigned char*>(block.data.data()),
                                      static_cast<long>(block.data.size())) <= 0) {
    DrainOpenSslErrors();
    return absl::InternalError("cannot re-encode PEM block");
  }
  std::string pw = password.value_or("");
  ERR_clear_error();
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(out.get(), nullptr, PasswordCallback,
                                         password.has_value() ? &pw : nullptr));
  if (key == nullptr) {
    std::string detail = DrainOpenSslErrors();
    if (encrypted) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot decrypt the ", block.name, ": wrong password or corrupt key"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the ", block.name, " block is not a valid private key (", detail, ")"));
  }
  return key;
}

}  // namespace certfleet::common::crypto::internal
