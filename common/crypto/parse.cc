#include "common/crypto/parse.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/keys.h"
#include "common/crypto/pem_blocks.h"

namespace certfleet::common::crypto {
namespace {

constexpr absl::string_view kNotACertificateFile = "not a PEM, DER or PKCS#12 certificate file";

// Parses `der` as one X.509 certificate that spans all of `der`; null otherwise.
X509Ptr StrictCertificateFromDer(absl::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr || p != end) {
    ERR_clear_error();
    return nullptr;
  }
  return cert;
}

absl::StatusOr<ParsedFile> ParsePem(absl::string_view contents,
                                    const std::optional<std::string>& password) {
  ParsedFile parsed;
  parsed.format = ParsedFile::Format::kPem;
  auto blocks = internal::ReadPemBlocks(contents);
  if (!blocks.ok()) return blocks.status();
  int index = 0;
  for (const internal::PemBlock& block : *blocks) {
    ++index;
    if (internal::IsCertificateBlock(block.name)) {
      const auto* p = reinterpret_cast<const unsigned char*>(block.data.data());
      // A TRUSTED CERTIFICATE carries OpenSSL's trust settings after the certificate.
      X509Ptr cert(block.name == "TRUSTED CERTIFICATE"
                       ? d2i_X509_AUX(nullptr, &p, static_cast<long>(block.data.size()))
                       : d2i_X509(nullptr, &p, static_cast<long>(block.data.size())));
      if (cert == nullptr) {
        std::string detail = DrainOpenSslErrors();
        return absl::InvalidArgumentError(absl::StrCat(
            "PEM block ", index, " (", block.name, ") is not a valid certificate (", detail, ")"));
      }
      parsed.certificates.push_back(std::move(cert));
    } else if (internal::IsPrivateKeyBlock(block.name)) {
      auto key = internal::DecodePrivateKeyBlock(block, password);
      if (!key.ok()) {
        return absl::Status(key.status().code(),
                            absl::StrCat("PEM block ", index, ": ", key.status().message()));
      }
      parsed.private_keys.push_back(*std::move(key));
    }
  }
  if (parsed.certificates.empty() && parsed.private_keys.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kNotACertificateFile, " (PEM without a certificate or private key)"));
  }
  return parsed;
}

// Finds the password that opens `p12`'s MAC: `password` when given, else "" or none.
// Returns the password to use for decryption (nullopt = NULL password).
absl::StatusOr<std::optional<std::string>> Pkcs12Password(
    PKCS12* p12, const std::optional<std::string>& password) {
  if (!PKCS12_mac_present(p12)) return password;
  if (password.has_value()) {
    if (PKCS12_verify_mac(p12, password->data(), static_cast<int>(password->size())) == 1) {
      return password;
    }
    ERR_clear_error();
    return absl::InvalidArgumentError("wrong password or corrupt PKCS#12 file (MAC check failed)");
  }
  if (PKCS12_verify_mac(p12, "", 0) == 1) return std::optional<std::string>("");
  if (PKCS12_verify_mac(p12, nullptr, 0) == 1) return std::optional<std::string>();
  ERR_clear_error();
  return absl::FailedPreconditionError("the PKCS#12 file is password-protected; give a password");
}

absl::StatusOr<ParsedFile> ParsePkcs12(PKCS12* p12, const std::optional<std::string>& password) {
  // Without the legacy provider only RC2-40 contents fail; report that only if parsing fails.
  absl::Status provider = EnsureLegacyProvider();
  auto pass = Pkcs12Password(p12, password);
  if (!pass.ok()) return pass.status();
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  ERR_clear_error();
  if (PKCS12_parse(p12, pass->has_value() ? (*pass)->c_str() : nullptr, &key, &cert, &ca) != 1) {
    std::string detail = DrainOpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decrypt the PKCS#12 contents: wrong password or corrupt file (", detail, ")"));
  }
  ParsedFile parsed;
  parsed.format = ParsedFile::Format::kPkcs12;
  EvpPkeyPtr owned_key(key);
  X509StackPtr owned_ca(ca);
  if (cert != nullptr) parsed.certificates.emplace_back(cert);
  if (owned_ca != nullptr) {
    while (sk_X509_num(owned_ca.get()) > 0) {
      parsed.certificates.emplace_back(sk_X509_shift(owned_ca.get()));
    }
  }
  if (owned_key != nullptr) parsed.private_keys.push_back(std::move(owned_key));
  if (parsed.certificates.empty() && parsed.private_keys.empty()) {
    return absl::InvalidArgumentError("the PKCS#12 file holds no certificate and no key");
  }
  return parsed;
}

}  // namespace

absl::Status EnsureLegacyProvider() {
  // Loaded once per process into the default library context and never unloaded. Loading any
  // provider stops `default` from loading implicitly, so both are loaded (SCOM.md, PFX files).
  static const absl::Status* const status = [] {
    OSSL_PROVIDER* legacy = OSSL_PROVIDER_load(nullptr, "legacy");
    OSSL_PROVIDER* deflt = OSSL_PROVIDER_load(nullptr, "default");
    if (deflt == nullptr) {
      return new absl::Status(absl::FailedPreconditionError(
          absl::StrCat("cannot load the OpenSSL default provider: ", DrainOpenSslErrors())));
    }
    if (legacy == nullptr) {
      return new absl::Status(absl::FailedPreconditionError(
          absl::StrCat("cannot load the OpenSSL legacy provider (needed for RC2-40 PFX files): ",
                       DrainOpenSslErrors())));
    }
    return new absl::Status();
  }();
  return *status;
}

absl::StatusOr<ParsedFile> ParseCertificateFile(absl::string_view contents,
                                                const std::optional<std::string>& password) {
  if (contents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kNotACertificateFile, " (empty)"));
  }
  if (internal::LooksLikePem(contents)) return ParsePem(contents, password);

  if (X509Ptr cert = StrictCertificateFromDer(contents); cert != nullptr) {
    ParsedFile parsed;
    parsed.format = ParsedFile::Format::kDer;
    parsed.certificates.push_back(std::move(cert));
    return parsed;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(contents.data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(contents.size())));
  if (p12 == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(kNotACertificateFile, " (or it is truncated)"));
  }
  return ParsePkcs12(p12.get(), password);
}

absl::StatusOr<ParsedFile> ReadCertificateFile(const std::string& path,
                                               const std::optional<std::string>& password) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string reason = std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(path, ": ", reason));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat(path, ": ", reason));
    }
    return absl::UnavailableError(absl::StrCat(path, ": ", reason));
  }
  std::string contents;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      if (err == EISDIR) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
      }
      return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto parsed = ParseCertificateFile(contents, password);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

std::string CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    DrainOpenSslErrors();
    return "";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string CertificateToDer(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) {
    DrainOpenSslErrors();
    return "";
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<X509Ptr> CertificateFromPem(absl::string_view pem) {
  auto certs = CertificatesFromPem(pem);
  if (!certs.ok()) return certs.status();
  return std::move(certs->front());
}

absl::StatusOr<std::vector<X509Ptr>> CertificatesFromPem(absl::string_view pem) {
  auto blocks = internal::ReadPemBlocks(pem);
  if (!blocks.ok()) return blocks.status();
  std::vector<X509Ptr> certs;
  for (const internal::PemBlock& block : *blocks) {
    if (!internal::IsCertificateBlock(block.name)) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(block.data.data());
    X509Ptr cert(block.name == "TRUSTED CERTIFICATE"
                     ? d2i_X509_AUX(nullptr, &p, static_cast<long>(block.data.size()))
                     : d2i_X509(nullptr, &p, static_cast<long>(block.data.size())));
    if (cert == nullptr) {
      std::string detail = DrainOpenSslErrors();
      return absl::InvalidArgumentError(
          absl::StrCat("PEM CERTIFICATE block is not a valid certificate (", detail, ")"));
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return absl::InvalidArgumentError("no CERTIFICATE in PEM text");
  return certs;
}

absl::StatusOr<X509Ptr> CertificateFromDer(absl::string_view der) {
  X509Ptr cert = StrictCertificateFromDer(der);
  if (cert == nullptr) return absl::InvalidArgumentError("not a DER X.509 certificate");
  return cert;
}

absl::StatusOr<std::string> BuildPkcs12(EVP_PKEY* key, X509* cert, const std::vector<X509*>& chain,
                                        absl::string_view password, Pkcs12Cipher cipher) {
  if (cert == nullptr) return absl::InvalidArgumentError("BuildPkcs12 needs a certificate");
  if (key != nullptr && !KeyMatchesCertificate(key, cert)) {
    return absl::InvalidArgumentError("the private key does not belong to the certificate");
  }
  absl::Status provider = EnsureLegacyProvider();
  if (!provider.ok() && cipher == Pkcs12Cipher::kLegacyRc2) return provider;

  X509StackPtr ca(sk_X509_new_null());
  if (ca == nullptr) return absl::ResourceExhaustedError("out of memory");
  for (X509* c : chain) {
    X509Ptr copy = CopyCertificate(c);
    if (sk_X509_push(ca.get(), copy.get()) <= 0) {
      return absl::ResourceExhaustedError("out of memory");
    }
    copy.release();
  }
  int nid_key = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
  int nid_cert = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
  const EVP_MD* mac_md = EVP_sha1();
  switch (cipher) {
    case Pkcs12Cipher::kLegacyRc2:
      nid_cert = NID_pbe_WithSHA1And40BitRC2_CBC;
      break;
    case Pkcs12Cipher::kTripleDes:
      break;
    case Pkcs12Cipher::kAes256:
      nid_key = NID_aes_256_cbc;
      nid_cert = NID_aes_256_cbc;
      mac_md = EVP_sha256();
      break;
  }
  constexpr int kIterations = 2048;
  std::string pw(password);
  ERR_clear_error();
  // mac_iter -1: no MAC yet; it is added below with the digest this cipher choice calls for.
  Pkcs12Ptr p12(PKCS12_create(pw.c_str(), nullptr, key, cert, ca.get(), nid_key, nid_cert,
                              kIterations, -1, 0));
  if (p12 == nullptr) {
    return absl::InternalError(absl::StrCat("PKCS12_create failed: ", DrainOpenSslErrors()));
  }
  if (PKCS12_set_mac(p12.get(), pw.c_str(), static_cast<int>(pw.size()), nullptr, 0, kIterations,
                     mac_md) != 1) {
    return absl::InternalError(absl::StrCat("PKCS12_set_mac failed: ", DrainOpenSslErrors()));
  }
  OPENSSL_cleanse(pw.data(), pw.size());
  unsigned char* der = nullptr;
  int len = i2d_PKCS12(p12.get(), &der);
  if (len <= 0) {
    return absl::InternalError(absl::StrCat("i2d_PKCS12 failed: ", DrainOpenSslErrors()));
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace certfleet::common::crypto
