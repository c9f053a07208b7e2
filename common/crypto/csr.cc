#include "common/crypto/csr.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/pem_blocks.h"
#include "common/status/status_macros.h"

namespace certfleet::common::crypto {
namespace {

// The name of the name-value pair that carries the template (MS-WCCE 2.2.2.7.10).
constexpr absl::string_view kCertificateTemplateName = "CertificateTemplate";
// KeyUsage has nine named bits (RFC 5280 4.2.1.3): digitalSignature (0) .. decipherOnly (8).
constexpr int kKeyUsageBits = 9;

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

// The ASN1_OBJECT of a dotted OID (never a name: "serverAuth" is not accepted).
absl::StatusOr<Asn1ObjectPtr> ObjectOf(absl::string_view dotted) {
  const std::string text(dotted);
  Asn1ObjectPtr object(OBJ_txt2obj(text.c_str(), /*no_name=*/1));
  if (object == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("'", dotted, "' is not a dotted OID"));
  }
  return object;
}

// The DER length octets of a content of `length` bytes.
std::string DerLength(size_t length) {
  if (length < 0x80) return std::string(1, static_cast<char>(length));
  std::string octets;
  for (size_t n = length; n > 0; n >>= 8)
    octets.insert(octets.begin(), static_cast<char>(n & 0xff));
  return absl::StrCat(std::string(1, static_cast<char>(0x80 | octets.size())), octets);
}

// The DER of a BMPString holding `utf8`. InvalidArgument when it has characters outside the
// Basic Multilingual Plane or is not UTF-8.
absl::StatusOr<std::string> BmpStringDer(absl::string_view utf8, absl::string_view what) {
  ASN1_STRING* raw = nullptr;
  if (ASN1_mbstring_copy(&raw, reinterpret_cast<const unsigned char*>(utf8.data()),
                         static_cast<int>(utf8.size()), MBSTRING_UTF8, B_ASN1_BMPSTRING) < 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(what, " '", utf8, "' cannot be a BMPString"));
  }
  Asn1StringPtr bmp(raw);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_BMPSTRING(bmp.get(), &der);
  if (len <= 0) return OpenSslError(absl::StrCat("encoding ", what));
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// The text of a string-typed ASN1_TYPE; nullopt for other types.
std::optional<std::string> StringOf(const ASN1_TYPE* type) {
  switch (type->type) {
    case V_ASN1_BMPSTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_T61STRING:
      return Asn1StringToUtf8(type->value.asn1_string);
    default:
      return std::nullopt;
  }
}

const EVP_MD* SignatureDigest(EVP_PKEY* key, absl::string_view name) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448) return nullptr;
  if (absl::EqualsIgnoreCase(name, "SHA256")) return EVP_sha256();
  if (absl::EqualsIgnoreCase(name, "SHA384")) return EVP_sha384();
  if (absl::EqualsIgnoreCase(name, "SHA512")) return EVP_sha512();
  return nullptr;
}

bool IsEdDsa(EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  return type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448;
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

// Takes `ext` (may be null: then the OpenSSL error is reported as `what`).
absl::Status Push(STACK_OF(X509_EXTENSION) * exts, X509_EXTENSION* ext, absl::string_view what) {
  X509ExtensionPtr owned(ext);
  if (owned == nullptr) return OpenSslError(absl::StrCat("building ", what));
  if (sk_X509_EXTENSION_push(exts, owned.get()) <= 0) return OpenSslError("extension stack");
  owned.release();
  return absl::OkStatus();
}

absl::Status AddSubjectAltName(const CsrOptions& options, STACK_OF(X509_EXTENSION) * exts) {
  if (options.dns_names.empty() && options.uris.empty()) return absl::OkStatus();
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (names == nullptr) return OpenSslError("GENERAL_NAMES_new");
  auto add = [&](int type, const std::string& value) -> absl::Status {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gn == nullptr || ia5 == nullptr ||
        ASN1_STRING_set(ia5, value.data(), static_cast<int>(value.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(ia5);
      return OpenSslError("building a subjectAltName entry");
    }
    GENERAL_NAME_set0_value(gn, type, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gn) <= 0) {
      GENERAL_NAME_free(gn);
      return OpenSslError("building subjectAltName");
    }
    return absl::OkStatus();
  };
  for (const std::string& dns : options.dns_names) CF_RETURN_IF_ERROR(add(GEN_DNS, dns));
  for (const std::string& uri : options.uris) CF_RETURN_IF_ERROR(add(GEN_URI, uri));
  return Push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get()), "subjectAltName");
}

absl::Status AddKeyUsage(uint32_t mask, STACK_OF(X509_EXTENSION) * exts) {
  if (mask == 0) return absl::OkStatus();
  if (mask >> kKeyUsageBits != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("key usage mask 0x", absl::Hex(mask), " has bits beyond decipherOnly (8)"));
  }
  Asn1StringPtr bits(ASN1_BIT_STRING_new());
  if (bits == nullptr) return OpenSslError("ASN1_BIT_STRING_new");
  for (int n = 0; n < kKeyUsageBits; ++n) {
    if ((mask & (1u << n)) != 0 && ASN1_BIT_STRING_set_bit(bits.get(), n, 1) != 1) {
      return OpenSslError("building KeyUsage");
    }
  }
  return Push(exts, X509V3_EXT_i2d(NID_key_usage, /*crit=*/1, bits.get()), "KeyUsage");
}

absl::Status AddExtendedKeyUsage(const std::vector<std::string>& oids,
                                 STACK_OF(X509_EXTENSION) * exts) {
  if (oids.empty()) return absl::OkStatus();
  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  if (eku == nullptr) return OpenSslError("EXTENDED_KEY_USAGE");
  for (const std::string& oid : oids) {
    CF_ASSIGN_OR_RETURN(Asn1ObjectPtr object, ObjectOf(oid), "extended key usage");
    if (sk_ASN1_OBJECT_push(eku.get(), object.get()) <= 0) {
      return OpenSslError("building ExtendedKeyUsage");
    }
    object.release();
  }
  return Push(exts, X509V3_EXT_i2d(NID_ext_key_usage, 0, eku.get()), "ExtendedKeyUsage");
}

absl::Status AddTemplateNameExtension(absl::string_view bmp_der, STACK_OF(X509_EXTENSION) * exts) {
  CF_ASSIGN_OR_RETURN(Asn1ObjectPtr object, ObjectOf(kTemplateNameExtensionOid));
  Asn1StringPtr value(ASN1_OCTET_STRING_new());
  if (value == nullptr ||
      ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(bmp_der.data()),
                            static_cast<int>(bmp_der.size())) != 1) {
    return OpenSslError("building the template name extension");
  }
  return Push(exts, X509_EXTENSION_create_by_OBJ(nullptr, object.get(), 0, value.get()),
              "the template name extension");
}

// The request attribute 1.3.6.1.4.1.311.13.2.1 with one value:
// EnrollmentNameValuePair ::= SEQUENCE { name BMPString, value BMPString }.
absl::Status AddTemplateAttribute(X509_REQ* req, absl::string_view name_bmp_der,
                                  absl::string_view value_bmp_der) {
  CF_ASSIGN_OR_RETURN(Asn1ObjectPtr object, ObjectOf(kEnrollmentNameValuePairOid));
  const std::string content = absl::StrCat(name_bmp_der, value_bmp_der);
  const std::string pair = absl::StrCat("\x30", DerLength(content.size()), content);
  if (X509_REQ_add1_attr_by_OBJ(req, object.get(), V_ASN1_SEQUENCE,
                                reinterpret_cast<const unsigned char*>(pair.data()),
                                static_cast<int>(pair.size())) != 1) {
    return OpenSslError("adding the CertificateTemplate request attribute");
  }
  return absl::OkStatus();
}

// The value of the name-value pair attribute named CertificateTemplate; "" when none.
std::string TemplateFromAttributes(X509_REQ* csr) {
  absl::StatusOr<Asn1ObjectPtr> object = ObjectOf(kEnrollmentNameValuePairOid);
  if (!object.ok()) return "";
  for (int index = -1; (index = X509_REQ_get_attr_by_OBJ(csr, object->get(), index)) >= 0;) {
    X509_ATTRIBUTE* attribute = X509_REQ_get_attr(csr, index);
    for (int v = 0; v < X509_ATTRIBUTE_count(attribute); ++v) {
      const ASN1_TYPE* value = X509_ATTRIBUTE_get0_type(attribute, v);
      if (value == nullptr || value->type != V_ASN1_SEQUENCE) continue;
      const unsigned char* p = value->value.sequence->data;
      Asn1SequencePtr pair(
          d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(value->value.sequence->length)));
      if (pair == nullptr || sk_ASN1_TYPE_num(pair.get()) != 2) continue;
      std::optional<std::string> name = StringOf(sk_ASN1_TYPE_value(pair.get(), 0));
      std::optional<std::string> text = StringOf(sk_ASN1_TYPE_value(pair.get(), 1));
      if (name.has_value() && text.has_value() &&
          absl::EqualsIgnoreCase(*name, kCertificateTemplateName)) {
        return *text;
      }
    }
  }
  ERR_clear_error();
  return "";
}

// The raw value (DER) of extension `oid` in `exts`; nullopt when absent.
std::optional<std::string> ExtensionValue(STACK_OF(X509_EXTENSION) * exts, absl::string_view oid) {
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (ObjectToDotted(X509_EXTENSION_get_object(ext)) != oid) continue;
    const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<size_t>(ASN1_STRING_length(value)));
  }
  return std::nullopt;
}

std::string TemplateFromNameExtension(STACK_OF(X509_EXTENSION) * exts) {
  std::optional<std::string> value = ExtensionValue(exts, kTemplateNameExtensionOid);
  if (!value.has_value()) return "";
  const auto* p = reinterpret_cast<const unsigned char*>(value->data());
  Asn1TypePtr type(d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(value->size())));
  ERR_clear_error();
  if (type == nullptr) return "";
  return StringOf(type.get()).value_or("");
}

std::string TemplateFromV2Extension(STACK_OF(X509_EXTENSION) * exts) {
  std::optional<std::string> value = ExtensionValue(exts, kTemplateV2ExtensionOid);
  if (!value.has_value()) return "";
  const auto* p = reinterpret_cast<const unsigned char*>(value->data());
  Asn1SequencePtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(value->size())));
  ERR_clear_error();
  if (seq == nullptr || sk_ASN1_TYPE_num(seq.get()) == 0) return "";
  const ASN1_TYPE* first = sk_ASN1_TYPE_value(seq.get(), 0);
  return first->type == V_ASN1_OBJECT ? ObjectToDotted(first->value.object) : "";
}

// "SHA256", ... for the request's signature algorithm; "" when it names no separate digest.
std::string SignatureDigestName(X509_REQ* csr) {
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* algorithm = nullptr;
  X509_REQ_get0_signature(csr, &signature, &algorithm);
  if (algorithm == nullptr) return "";
  const ASN1_OBJECT* object = nullptr;
  X509_ALGOR_get0(&object, nullptr, nullptr, algorithm);
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (object == nullptr || OBJ_find_sigid_algs(OBJ_obj2nid(object), &md_nid, &pk_nid) != 1 ||
      md_nid == NID_undef) {
    return "";
  }
  const char* sn = OBJ_nid2sn(md_nid);
  return sn != nullptr ? absl::AsciiStrToUpper(sn) : "";
}

// Whether the request has an extensionRequest attribute (either OID OpenSSL reads).
bool HasExtensionRequest(X509_REQ* csr) {
  return X509_REQ_get_attr_by_NID(csr, NID_ext_req, -1) >= 0 ||
         X509_REQ_get_attr_by_NID(csr, NID_ms_ext_req, -1) >= 0;
}

}  // namespace

absl::StatusOr<X509ReqPtr> BuildCsr(EVP_PKEY* key, const CsrOptions& options) {
  if (key == nullptr) return absl::InvalidArgumentError("BuildCsr needs a key");
  const EVP_MD* digest = SignatureDigest(key, options.signature_digest);
  if (digest == nullptr && !IsEdDsa(key)) {
    return absl::InvalidArgumentError(absl::StrCat("signature digest '", options.signature_digest,
                                                   "' is not SHA256, SHA384 or SHA512"));
  }
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

  ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  if (exts == nullptr) return OpenSslError("extension stack");
  CF_RETURN_IF_ERROR(AddSubjectAltName(options, exts.get()));
  CF_RETURN_IF_ERROR(AddKeyUsage(options.key_usage, exts.get()));
  CF_RETURN_IF_ERROR(AddExtendedKeyUsage(options.extended_key_usage, exts.get()));
  if (!options.template_name.empty()) {
    CF_ASSIGN_OR_RETURN(std::string value, BmpStringDer(options.template_name, "template name"));
    CF_ASSIGN_OR_RETURN(std::string name,
                        BmpStringDer(kCertificateTemplateName, "template attribute name"));
    CF_RETURN_IF_ERROR(AddTemplateNameExtension(value, exts.get()));
    CF_RETURN_IF_ERROR(AddTemplateAttribute(req.get(), name, value));
  }
  if (sk_X509_EXTENSION_num(exts.get()) > 0 &&
      X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
    return OpenSslError("X509_REQ_add_extensions");
  }
  if (X509_REQ_sign(req.get(), key, digest) <= 0) return OpenSslError("signing the CSR");
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
  info.signature_digest = SignatureDigestName(csr);
  const X509_NAME* subject = X509_REQ_get_subject_name(csr);
  int index = -1;
  int last = -1;
  while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0) last = index;
  if (last >= 0) {
    info.subject_cn =
        Asn1StringToUtf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last)));
  }
  for (int i = 0; i < X509_REQ_get_attr_count(csr); ++i) {
    info.attribute_oids.push_back(
        ObjectToDotted(X509_ATTRIBUTE_get0_object(X509_REQ_get_attr(csr, i))));
  }

  ExtensionStackPtr exts(X509_REQ_get_extensions(csr));
  if (exts == nullptr) {
    // OpenSSL 3 returns an empty stack when there is no extensionRequest; null is an error.
    std::string detail = DrainOpenSslErrors();
    if (HasExtensionRequest(csr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the CSR's extension request cannot be decoded (", detail, ")"));
    }
    exts.reset(sk_X509_EXTENSION_new_null());
    if (exts == nullptr) return OpenSslError("extension stack");
  }
  for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    std::string oid =
        ObjectToDotted(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts.get(), i)));
    for (const std::string& seen : info.extension_oids) {
      if (seen == oid) {
        return absl::InvalidArgumentError(
            absl::StrCat("the CSR requests extension ", oid, " more than once"));
      }
    }
    info.extension_oids.push_back(std::move(oid));
  }

  // X509V3_get_d2i: null with critical >= 0 when the extension is there but malformed.
  auto malformed = [](absl::string_view what) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("the CSR's ", what, " cannot be decoded"));
  };
  int critical = -1;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(exts.get(), NID_subject_alt_name, &critical, nullptr)));
  if (names == nullptr && critical >= 0) return malformed("subjectAltName");
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type == GEN_DNS) info.dns_names.push_back(Asn1StringToUtf8(name->d.dNSName));
      if (name->type == GEN_URI)
        info.uris.push_back(Asn1StringToUtf8(name->d.uniformResourceIdentifier));
    }
  }
  critical = -1;
  Asn1StringPtr usage(
      static_cast<ASN1_BIT_STRING*>(X509V3_get_d2i(exts.get(), NID_key_usage, &critical, nullptr)));
  if (usage == nullptr && critical >= 0) return malformed("KeyUsage");
  if (usage != nullptr) {
    info.has_key_usage = true;
    info.key_usage_critical = critical == 1;
    for (int n = 0; n < kKeyUsageBits; ++n) {
      if (ASN1_BIT_STRING_get_bit(usage.get(), n) == 1) info.key_usage |= 1u << n;
    }
  }
  critical = -1;
  ExtendedKeyUsagePtr eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509V3_get_d2i(exts.get(), NID_ext_key_usage, &critical, nullptr)));
  if (eku == nullptr && critical >= 0) return malformed("ExtendedKeyUsage");
  if (eku != nullptr) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      info.extended_key_usage.push_back(ObjectToDotted(sk_ASN1_OBJECT_value(eku.get(), i)));
    }
  }

  const std::string from_attribute = TemplateFromAttributes(csr);
  const std::string from_extension = TemplateFromNameExtension(exts.get());
  if (!from_attribute.empty() && !from_extension.empty() &&
      !absl::EqualsIgnoreCase(from_attribute, from_extension)) {
    return absl::InvalidArgumentError(absl::StrCat("the CSR names two templates: '", from_attribute,
                                                   "' in its CertificateTemplate attribute, '",
                                                   from_extension,
                                                   "' in its template name extension"));
  }
  info.template_name = !from_attribute.empty()   ? from_attribute
                       : !from_extension.empty() ? from_extension
                                                 : TemplateFromV2Extension(exts.get());
  ERR_clear_error();
  return info;
}

EvpPkeyPtr CsrPublicKey(X509_REQ* csr) { return EvpPkeyPtr(X509_REQ_get_pubkey(csr)); }

}  // namespace certfleet::common::crypto
