#include "common/crypto/describe.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"

namespace certfleet::common::crypto {
namespace {

constexpr char kTemplateNameOid[] = "1.3.6.1.4.1.311.20.2";
constexpr char kTemplateV2Oid[] = "1.3.6.1.4.1.311.21.7";

std::string NameToString(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order (most specific first), UTF-8 kept as is rather than escaped.
  if (bio == nullptr ||
      X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    ERR_clear_error();
    return "";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string LastCommonName(const X509_NAME* name) {
  int index = -1;
  int last = -1;
  while ((index = X509_NAME_get_index_by_NID(name, NID_commonName, index)) >= 0) last = index;
  if (last < 0) return "";
  return Asn1StringToUtf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last)));
}

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* t, absl::string_view what) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("the certificate's ", what, " time cannot be decoded"));
  }
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                           tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

// The DER INTEGER content bytes of the serial (sign byte kept).
absl::StatusOr<std::string> SerialContentBytes(const ASN1_INTEGER* serial) {
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(serial, &der);
  if (len <= 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the certificate's serial cannot be encoded");
  }
  std::string tlv(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  // Skip the tag and the (short or long form) length.
  if (tlv.size() < 2) return absl::InvalidArgumentError("malformed serial");
  size_t pos = 1;
  auto first = static_cast<unsigned char>(tlv[pos++]);
  if (first & 0x80) pos += first & 0x7F;
  if (pos > tlv.size()) return absl::InvalidArgumentError("malformed serial");
  return tlv.substr(pos);
}

std::string KeyAlgorithmName(int id) {
  switch (id) {
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
    case EVP_PKEY_DH:
      return "DH";
    default: {
      const char* sn = OBJ_nid2sn(id);
      return sn != nullptr ? absl::AsciiStrToUpper(sn) : "UNKNOWN";
    }
  }
}

std::string SignatureHashName(X509* cert) {
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (X509_get_signature_info(cert, &md_nid, &pk_nid, nullptr, nullptr) != 1) {
    ERR_clear_error();
    if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) != 1) return "";
  }
  if (md_nid == NID_undef) {
    // EdDSA hashes intrinsically (RFC 8032).
    if (pk_nid == NID_ED25519) return "SHA512";
    if (pk_nid == NID_ED448) return "SHAKE256";
    return "";
  }
  const char* sn = OBJ_nid2sn(md_nid);
  return sn != nullptr ? absl::AsciiStrToUpper(sn) : "";
}

uint32_t KeyUsageBits(uint32_t openssl_bits) {
  constexpr std::pair<uint32_t, uint32_t> kMap[] = {
      {KU_DIGITAL_SIGNATURE, model::kDigitalSignature},
      {KU_NON_REPUDIATION, model::kNonRepudiation},
      {KU_KEY_ENCIPHERMENT, model::kKeyEncipherment},
      {KU_DATA_ENCIPHERMENT, model::kDataEncipherment},
      {KU_KEY_AGREEMENT, model::kKeyAgreement},
      {KU_KEY_CERT_SIGN, model::kKeyCertSign},
      {KU_CRL_SIGN, model::kCrlSign},
  };
  uint32_t out = 0;
  for (const auto& [from, to] : kMap) {
    if (openssl_bits & from) out |= to;
  }
  return out;
}

// The raw extension value (DER) of the extension `oid`, or nullopt.
std::optional<std::string> ExtensionValue(X509* cert, const char* oid) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  if (obj == nullptr) return std::nullopt;
  int index = X509_get_ext_by_OBJ(cert, obj, -1);
  ASN1_OBJECT_free(obj);
  if (index < 0) return std::nullopt;
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(X509_get_ext(cert, index));
  if (value == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                     static_cast<size_t>(ASN1_STRING_length(value)));
}

std::string TemplateName(X509* cert) {
  if (auto value = ExtensionValue(cert, kTemplateNameOid)) {
    // A DirectoryString, in practice a BMPString ("WebServer", "Machine", ...).
    const auto* p = reinterpret_cast<const unsigned char*>(value->data());
    ASN1_TYPE* type = d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(value->size()));
    std::string name;
    if (type != nullptr) {
      switch (type->type) {
        case V_ASN1_BMPSTRING:
        case V_ASN1_UTF8STRING:
        case V_ASN1_PRINTABLESTRING:
        case V_ASN1_IA5STRING:
        case V_ASN1_UNIVERSALSTRING:
        case V_ASN1_T61STRING:
          name = Asn1StringToUtf8(type->value.asn1_string);
          break;
        default:
          break;
      }
      ASN1_TYPE_free(type);
    }
    ERR_clear_error();
    if (!name.empty()) return name;
  }
  if (auto value = ExtensionValue(cert, kTemplateV2Oid)) {
    // SEQUENCE { templateID OBJECT IDENTIFIER, majorVersion INTEGER, minorVersion INTEGER }
    const auto* p = reinterpret_cast<const unsigned char*>(value->data());
    ASN1_SEQUENCE_ANY* seq = d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(value->size()));
    std::string oid;
    if (seq != nullptr) {
      if (sk_ASN1_TYPE_num(seq) > 0) {
        ASN1_TYPE* first = sk_ASN1_TYPE_value(seq, 0);
        if (first->type == V_ASN1_OBJECT) oid = ObjectToDotted(first->value.object);
      }
      sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    }
    ERR_clear_error();
    return oid;
  }
  return "";
}

}  // namespace

absl::StatusOr<model::CertificateInfo> DescribeCertificate(X509* cert, bool has_private_key) {
  if (cert == nullptr) return absl::InvalidArgumentError("no certificate");
  model::CertificateInfo info;
  info.has_private_key = has_private_key;
  info.subject = NameToString(X509_get_subject_name(cert));
  info.subject_cn = LastCommonName(X509_get_subject_name(cert));
  info.issuer = NameToString(X509_get_issuer_name(cert));

  int crit = 0;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type == GEN_DNS) {
        info.dns_names.push_back(Asn1StringToUtf8(name->d.dNSName));
      } else if (name->type == GEN_URI) {
        info.uris.push_back(Asn1StringToUtf8(name->d.uniformResourceIdentifier));
      }
    }
    GENERAL_NAMES_free(names);
  }

  auto serial = SerialContentBytes(X509_get0_serialNumber(cert));
  if (!serial.ok()) return serial.status();
  info.serial = HexUpper(*serial);
  std::string reversed(serial->rbegin(), serial->rend());
  info.channel_serial = HexUpper(reversed);

  std::string der = CertificateToDer(cert);
  if (der.empty()) return absl::InvalidArgumentError("the certificate cannot be DER-encoded");
  info.thumbprint = Sha1Hex(der);
  info.sha256 = Sha256Hex(der);

  auto not_before = ToTime(X509_get0_notBefore(cert), "notBefore");
  if (!not_before.ok()) return not_before.status();
  auto not_after = ToTime(X509_get0_notAfter(cert), "notAfter");
  if (!not_after.ok()) return not_after.status();
  info.not_before = *not_before;
  info.not_after = *not_after;

  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key != nullptr) {
    info.key_algorithm = KeyAlgorithmName(EVP_PKEY_get_base_id(key));
    info.key_bits = EVP_PKEY_get_bits(key);
  } else {
    ERR_clear_error();
    info.key_algorithm = "UNKNOWN";
  }
  info.signature_hash = SignatureHashName(cert);

  uint32_t flags = X509_get_extension_flags(cert);
  info.has_key_usage = (flags & EXFLAG_KUSAGE) != 0;
  if (info.has_key_usage) info.key_usage = KeyUsageBits(X509_get_key_usage(cert));
  info.is_ca = (flags & EXFLAG_CA) != 0;

  auto* eku =
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, nullptr));
  if (eku != nullptr) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); ++i) {
      info.extended_key_usage.push_back(ObjectToDotted(sk_ASN1_OBJECT_value(eku, i)));
    }
    EXTENDED_KEY_USAGE_free(eku);
  }
  info.template_name = TemplateName(cert);
  ERR_clear_error();
  return info;
}

absl::Status VerifyChain(X509* leaf, const std::vector<X509*>& intermediates,
                         const std::vector<X509*>& roots, absl::Time at) {
  if (leaf == nullptr) return absl::InvalidArgumentError("no certificate to verify");
  X509StorePtr store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (store == nullptr || untrusted == nullptr || ctx == nullptr) {
    return absl::ResourceExhaustedError("out of memory");
  }
  for (X509* root : roots) {
    if (X509_STORE_add_cert(store.get(), root) != 1) ERR_clear_error();  // duplicates are fine
  }
  for (X509* cert : intermediates) {
    X509Ptr copy = CopyCertificate(cert);
    if (sk_X509_push(untrusted.get(), copy.get()) <= 0) {
      return absl::ResourceExhaustedError("out of memory");
    }
    copy.release();
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return absl::InternalError(absl::StrCat("X509_STORE_CTX_init failed: ", DrainOpenSslErrors()));
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  // Every certificate in `roots` is a trust anchor, as in Windows' Trusted Root store, even when
  // it is not self-signed.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  int ok = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (ok == 1) return absl::OkStatus();
  int err = X509_STORE_CTX_get_error(ctx.get());
  return absl::FailedPreconditionError(
      absl::StrCat("certificate chain does not verify: ", X509_verify_cert_error_string(err)));
}

}  // namespace certfleet::common::crypto
