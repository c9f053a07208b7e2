#include "common/crypto/issue.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/status/status_macros.h"

namespace certfleet::common::crypto {
namespace {

constexpr char kTemplateNameOid[] = "1.3.6.1.4.1.311.20.2";

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

// Adds `ext` to `cert` (copied), taking ownership of `ext`.
absl::Status AddExtension(X509* cert, X509_EXTENSION* ext, absl::string_view what) {
  X509ExtensionPtr owned(ext);
  if (owned == nullptr) return OpenSslError(absl::StrCat("building ", what));
  if (X509_add_ext(cert, owned.get(), -1) != 1) return OpenSslError(absl::StrCat("adding ", what));
  return absl::OkStatus();
}

// An ASN1_INTEGER from DER INTEGER content bytes, or InvalidArgument.
absl::StatusOr<ASN1_INTEGER*> SerialFromContent(absl::string_view content) {
  if (content.empty() || content.size() > 20) {
    return absl::InvalidArgumentError("a serial must have 1 to 20 content bytes");
  }
  if (static_cast<unsigned char>(content[0]) & 0x80) {
    return absl::InvalidArgumentError(
        "the serial would be negative; prefix a 00 sign byte when the top bit is set");
  }
  std::string der;
  der.push_back(0x02);
  der.push_back(static_cast<char>(content.size()));
  der.append(content.data(), content.size());
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ASN1_INTEGER* serial = d2i_ASN1_INTEGER(nullptr, &p, static_cast<long>(der.size()));
  if (serial == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "serial ", HexUpper(content), " is not a minimal DER INTEGER (superfluous 00 byte)"));
  }
  return serial;
}

absl::Status SetName(X509_NAME* name, const CertificateSpec& spec) {
  if (!spec.subject_o.empty() &&
      X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.subject_o.c_str()), -1,
                                 -1, 0) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad organization name: ", DrainOpenSslErrors()));
  }
  if (!spec.subject_cn.empty() &&
      X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.subject_cn.c_str()),
                                 -1, -1, 0) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad common name: ", DrainOpenSslErrors()));
  }
  return absl::OkStatus();
}

absl::Status AddSubjectAltNames(X509* cert, const CertificateSpec& spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty() && spec.uris.empty()) {
    return absl::OkStatus();
  }
  GENERAL_NAMES* names = GENERAL_NAMES_new();
  if (names == nullptr) return OpenSslError("GENERAL_NAMES_new");
  auto free_names = [&] { GENERAL_NAMES_free(names); };
  auto add_ia5 = [&](int type, const std::string& value) -> absl::Status {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gn == nullptr || ia5 == nullptr ||
        ASN1_STRING_set(ia5, value.data(), static_cast<int>(value.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(ia5);
      return OpenSslError("building a subjectAltName entry");
    }
    GENERAL_NAME_set0_value(gn, type, ia5);
    sk_GENERAL_NAME_push(names, gn);
    return absl::OkStatus();
  };
  for (const std::string& dns : spec.dns_names) {
    if (absl::Status s = add_ia5(GEN_DNS, dns); !s.ok()) {
      free_names();
      return s;
    }
  }
  for (const std::string& ip : spec.ip_addresses) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ERR_clear_error();
      free_names();
      return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_OCTET_STRING_free(octets);
      free_names();
      return OpenSslError("GENERAL_NAME_new");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, octets);
    sk_GENERAL_NAME_push(names, gn);
  }
  for (const std::string& uri : spec.uris) {
    if (absl::Status s = add_ia5(GEN_URI, uri); !s.ok()) {
      free_names();
      return s;
    }
  }
  // RFC 5280 4.2.1.6: critical when the subject is empty.
  bool critical = spec.subject_cn.empty() && spec.subject_o.empty();
  X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, critical ? 1 : 0, names);
  free_names();
  return AddExtension(cert, ext, "subjectAltName");
}

absl::Status AddKeyUsage(X509* cert, uint32_t key_usage) {
  if (key_usage == 0) return absl::OkStatus();
  ASN1_BIT_STRING* bits = ASN1_BIT_STRING_new();
  if (bits == nullptr) return OpenSslError("ASN1_BIT_STRING_new");
  // model::KeyUsageBit n is (1 << n), which is RFC 5280's bit n.
  for (int n = 0; n < 9; ++n) {
    if (key_usage & (1u << n)) ASN1_BIT_STRING_set_bit(bits, n, 1);
  }
  X509_EXTENSION* ext = X509V3_EXT_i2d(NID_key_usage, 1, bits);
  ASN1_BIT_STRING_free(bits);
  return AddExtension(cert, ext, "keyUsage");
}

absl::Status AddExtendedKeyUsage(X509* cert, const std::vector<std::string>& oids) {
  if (oids.empty()) return absl::OkStatus();
  EXTENDED_KEY_USAGE* eku = sk_ASN1_OBJECT_new_null();
  if (eku == nullptr) return OpenSslError("EXTENDED_KEY_USAGE");
  for (const std::string& oid : oids) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    if (obj == nullptr) {
      ERR_clear_error();
      sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
      return absl::InvalidArgumentError(absl::StrCat("'", oid, "' is not a dotted OID"));
    }
    sk_ASN1_OBJECT_push(eku, obj);
  }
  X509_EXTENSION* ext = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
  sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
  return AddExtension(cert, ext, "extendedKeyUsage");
}

absl::Status AddBasicConstraints(X509* cert, const CertificateSpec& spec) {
  if (!spec.is_ca) return absl::OkStatus();
  BASIC_CONSTRAINTS* bc = BASIC_CONSTRAINTS_new();
  if (bc == nullptr) return OpenSslError("BASIC_CONSTRAINTS_new");
  bc->ca = 0xFF;
  if (spec.path_len >= 0) {
    bc->pathlen = ASN1_INTEGER_new();
    if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, spec.path_len) != 1) {
      BASIC_CONSTRAINTS_free(bc);
      return OpenSslError("pathLenConstraint");
    }
  }
  X509_EXTENSION* ext = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
  BASIC_CONSTRAINTS_free(bc);
  return AddExtension(cert, ext, "basicConstraints");
}

absl::Status AddTemplateName(X509* cert, const std::string& template_name) {
  if (template_name.empty()) return absl::OkStatus();
  // The extension value is a BMPString, as AD CS writes it.
  ASN1_STRING* bmp = nullptr;
  if (ASN1_mbstring_copy(&bmp, reinterpret_cast<const unsigned char*>(template_name.data()),
                         static_cast<int>(template_name.size()), MBSTRING_UTF8,
                         B_ASN1_BMPSTRING) < 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("template name '", template_name, "' cannot be a BMPString"));
  }
  unsigned char* der = nullptr;
  int len = i2d_ASN1_BMPSTRING(bmp, &der);
  ASN1_STRING_free(bmp);
  if (len <= 0) return OpenSslError("encoding the template name");
  ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
  ASN1_OBJECT* obj = OBJ_txt2obj(kTemplateNameOid, 1);
  X509_EXTENSION* ext = nullptr;
  if (value != nullptr && obj != nullptr && ASN1_OCTET_STRING_set(value, der, len) == 1) {
    ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, value);
  }
  OPENSSL_free(der);
  ASN1_OCTET_STRING_free(value);
  ASN1_OBJECT_free(obj);
  return AddExtension(cert, ext, "certificate template name");
}

absl::Status AddKeyIdentifiers(X509* cert, X509* issuer) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  CF_RETURN_IF_ERROR(
      AddExtension(cert, X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_key_identifier, "hash"),
                   "subjectKeyIdentifier"));
  return AddExtension(
      cert, X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"),
      "authorityKeyIdentifier");
}

}  // namespace

absl::StatusOr<X509Ptr> IssueCertificate(const CertificateSpec& spec, EVP_PKEY* subject_key,
                                         X509* issuer_cert, EVP_PKEY* issuer_key) {
  if (subject_key == nullptr || issuer_key == nullptr) {
    return absl::InvalidArgumentError("IssueCertificate needs a subject key and an issuer key");
  }
  if (spec.not_after < spec.not_before) {
    return absl::InvalidArgumentError("not_after is before not_before");
  }
  if (issuer_cert == nullptr && EVP_PKEY_eq(subject_key, issuer_key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("a self-signed certificate needs subject_key == issuer_key");
  }
  if (issuer_cert != nullptr && !KeyMatchesCertificate(issuer_key, issuer_cert)) {
    return absl::InvalidArgumentError("issuer_key is not the issuer certificate's key");
  }
  const EVP_MD* md = nullptr;
  int issuer_type = EVP_PKEY_get_base_id(issuer_key);
  if (issuer_type != EVP_PKEY_ED25519 && issuer_type != EVP_PKEY_ED448) {
    md = EVP_get_digestbyname(spec.signature_digest.c_str());
    if (md == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown signature digest '", spec.signature_digest, "'"));
    }
  }

  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return OpenSslError("X509_set_version");

  std::string serial_bytes = spec.serial;
  if (serial_bytes.empty()) {
    serial_bytes = RandomBytes(16);
    // Positive, and a non-zero first byte keeps all 16 bytes in the encoding.
    serial_bytes[0] = static_cast<char>((serial_bytes[0] & 0x7F) | 0x40);
  }
  CF_ASSIGN_OR_RETURN(ASN1_INTEGER * serial, SerialFromContent(serial_bytes));
  int set_serial = X509_set_serialNumber(cert.get(), serial);
  ASN1_INTEGER_free(serial);
  if (set_serial != 1) return OpenSslError("X509_set_serialNumber");

  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(spec.not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(spec.not_after)) == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("validity times cannot be encoded");
  }
  CF_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert.get()), spec));
  X509_NAME* issuer_name = issuer_cert != nullptr ? X509_get_subject_name(issuer_cert)
                                                  : X509_get_subject_name(cert.get());
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1) return OpenSslError("issuer name");
  if (X509_set_pubkey(cert.get(), subject_key) != 1) return OpenSslError("X509_set_pubkey");

  CF_RETURN_IF_ERROR(AddBasicConstraints(cert.get(), spec));
  CF_RETURN_IF_ERROR(AddKeyUsage(cert.get(), spec.key_usage));
  CF_RETURN_IF_ERROR(AddExtendedKeyUsage(cert.get(), spec.extended_key_usage));
  CF_RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), spec));
  CF_RETURN_IF_ERROR(
      AddKeyIdentifiers(cert.get(), issuer_cert != nullptr ? issuer_cert : cert.get()));
  CF_RETURN_IF_ERROR(AddTemplateName(cert.get(), spec.template_name));
  if (X509_sign(cert.get(), issuer_key, md) <= 0) return OpenSslError("signing the certificate");
  return cert;
}

}  // namespace certfleet::common::crypto
