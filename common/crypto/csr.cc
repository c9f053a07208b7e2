#include "common/crypto/csr.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/pem_blocks.h"

namespace certfleet::common::crypto {
namespace {

struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

std::string Utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) {
    ERR_clear_error();
    return "";
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return result;
}

const EVP_MD* DigestFor(EVP_PKEY* key) {
  int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448) return nullptr;
  return EVP_sha256();
}

std::string KeyAlgorithmName(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS";
    case EVP_PKEY_EC:
      return "EC";
    case EVP_PKEY_ED25519:
      return "ED25519";
    case EVP_PKEY_ED448:
      return "ED448";
    case EVP_PKEY_DSA:
      return "DSA";
    default:
      return "UNKNOWN";
  }
}

}  // namespace

absl::StatusOr<X509ReqPtr> BuildCsr(EVP_PKEY* key, const CsrOptions& options) {
  if (key == nullptr) return absl::InvalidArgumentError("BuildCsr needs a key");
  X509ReqPtr req(X509_REQ_new());
  if (req == nullptr) return OpenSslError("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return OpenSslError("X509_REQ_set_version");
  }
  if (!options.subject_cn.empty() &&
      X509_NAME_add_entry_by_NID(
          X509_REQ_get_subject_name(req.get()), NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(options.subject_cn.c_str()), -1, -1, 0) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad common name: ", DrainOpenSslErrors()));
  }
  if (X509_REQ_set_pubkey(req.get(), key) != 1) return OpenSslError("X509_REQ_set_pubkey");

  if (!options.dns_names.empty() || !options.uris.empty()) {
    GENERAL_NAMES* names = GENERAL_NAMES_new();
    if (names == nullptr) return OpenSslError("GENERAL_NAMES_new");
    auto add = [&](int type, const std::string& value) {
      GENERAL_NAME* gn = GENERAL_NAME_new();
      ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
      if (gn == nullptr || ia5 == nullptr ||
          ASN1_STRING_set(ia5, value.data(), static_cast<int>(value.size())) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(ia5);
        return false;
      }
      GENERAL_NAME_set0_value(gn, type, ia5);
      sk_GENERAL_NAME_push(names, gn);
      return true;
    };
    bool ok = true;
    for (const std::string& dns : options.dns_names) ok = ok && add(GEN_DNS, dns);
    for (const std::string& uri : options.uris) ok = ok && add(GEN_URI, uri);
    X509_EXTENSION* ext = ok ? X509V3_EXT_i2d(NID_subject_alt_name, 0, names) : nullptr;
    GENERAL_NAMES_free(names);
    if (ext == nullptr) return OpenSslError("building subjectAltName");
    ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    if (exts == nullptr || sk_X509_EXTENSION_push(exts.get(), ext) <= 0) {
      X509_EXTENSION_free(ext);
      return OpenSslError("extension stack");
    }
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return OpenSslError("X509_REQ_add_extensions");
    }
  }
  if (X509_REQ_sign(req.get(), key, DigestFor(key)) <= 0) return OpenSslError("signing the CSR");
  return req;
}

std::string CsrToPem(X509_REQ* csr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), csr) != 1) {
    DrainOpenSslErrors();
    return "";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<X509ReqPtr> CsrFromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  ERR_clear_error();
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, internal::PasswordCallback, nullptr));
  if (req == nullptr) {
    std::string detail = DrainOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat("no valid CERTIFICATE REQUEST in PEM text (", detail, ")"));
  }
  return req;
}

absl::StatusOr<CsrInfo> InspectCsr(X509_REQ* csr) {
  if (csr == nullptr) return absl::InvalidArgumentError("no CSR");
  EvpPkeyPtr key = CsrPublicKey(csr);
  if (key == nullptr) {
    DrainOpenSslErrors();
    return absl::InvalidArgumentError("the CSR's public key cannot be decoded");
  }
  if (X509_REQ_verify(csr, key.get()) != 1) {
    DrainOpenSslErrors();
    return absl::InvalidArgumentError("the CSR's signature does not verify");
  }
  CsrInfo info;
  info.key_algorithm = KeyAlgorithmName(key.get());
  info.key_bits = EVP_PKEY_get_bits(key.get());
  const X509_NAME* subject = X509_REQ_get_subject_name(csr);
  int index = -1;
  int last = -1;
  while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0) last = index;
  if (last >= 0)
    info.subject_cn = Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last)));

  ExtensionStackPtr exts(X509_REQ_get_extensions(csr));
  if (exts != nullptr) {
    auto* names = static_cast<GENERAL_NAMES*>(
        X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr));
    if (names != nullptr) {
      for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
        if (name->type == GEN_DNS) info.dns_names.push_back(Utf8(name->d.dNSName));
        if (name->type == GEN_URI) info.uris.push_back(Utf8(name->d.uniformResourceIdentifier));
      }
      GENERAL_NAMES_free(names);
    }
  }
  ERR_clear_error();
  return info;
}

EvpPkeyPtr CsrPublicKey(X509_REQ* csr) { return EvpPkeyPtr(X509_REQ_get_pubkey(csr)); }

}  // namespace certfleet::common::crypto
