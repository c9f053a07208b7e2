#include "controller/renewal/csr_policy.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::renewal {
namespace {

using common::crypto::Asn1SequencePtr;
using common::crypto::BasicConstraintsPtr;
using common::crypto::ExtensionStackPtr;
using common::crypto::GeneralNamesPtr;
using common::crypto::X509Ptr;
using common::crypto::X509ReqPtr;
using common::model::CertificateProfile;

// Extensions a request may carry (dotted OIDs). Anything else could ask a CA that copies
// requested extensions for powers the profile does not grant.
constexpr absl::string_view kSubjectAltNameOid = "2.5.29.17";
constexpr absl::string_view kKeyUsageOid = "2.5.29.15";
constexpr absl::string_view kExtendedKeyUsageOid = "2.5.29.37";
constexpr absl::string_view kBasicConstraintsOid = "2.5.29.19";
constexpr absl::string_view kSubjectKeyIdentifierOid = "2.5.29.14";

// Request attributes a request may carry. Windows' certreq adds the last three on its own.
constexpr absl::string_view kExtensionRequestOid = "1.2.840.113549.1.9.14";
constexpr absl::string_view kMsExtensionRequestOid = "1.3.6.1.4.1.311.2.1.14";
constexpr absl::string_view kOsVersionOid = "1.3.6.1.4.1.311.13.2.3";
constexpr absl::string_view kClientInfoOid = "1.3.6.1.4.1.311.21.20";
constexpr absl::string_view kCspInfoOid = "1.3.6.1.4.1.311.13.2.2";

// The one AD CS name-value pair a request may carry (MS-WCCE 2.2.2.7.10).
constexpr absl::string_view kCertificateTemplatePair = "CertificateTemplate";

std::string Dotted(const ASN1_OBJECT* object) {
  std::string dotted = common::crypto::ObjectToDotted(object);
  return dotted.empty() ? "(unreadable OID)" : dotted;
}

// "1.3.6.1.5.5.7.1.1 (Authority Information Access)" when OpenSSL knows the OID.
std::string Describe(absl::string_view dotted) {
  const std::string text(dotted);
  int nid = OBJ_txt2nid(text.c_str());
  ERR_clear_error();
  if (nid == NID_undef) return text;
  return absl::StrCat(text, " (", OBJ_nid2ln(nid), ")");
}

bool SameName(absl::string_view a, absl::string_view b) { return absl::EqualsIgnoreCase(a, b); }

// What the names of a subject and a subjectAltName say.
struct Names {
  std::vector<std::string> common_names;
  bool has_san = false;
  std::vector<std::string> dns_names;
  // Every SAN entry that is not a DNS name, described ("IP address 10.0.0.1").
  std::vector<std::string> other_names;
};

std::vector<std::string> CommonNames(const X509_NAME* subject) {
  std::vector<std::string> out;
  int index = -1;
  while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0) {
    out.push_back(common::crypto::Asn1StringToUtf8(
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index))));
  }
  return out;
}

std::string IpText(const ASN1_OCTET_STRING* ip) {
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  const int len = ASN1_STRING_length(ip);
  if (len == 4) return absl::StrCat(p[0], ".", p[1], ".", p[2], ".", p[3]);
  std::string out;
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < len; ++i) {
    if (i > 0 && i % 2 == 0) out.push_back(':');
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xf]);
  }
  return out;
}

void ReadGeneralNames(const GENERAL_NAMES* names, Names* out) {
  out->has_san = true;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    switch (name->type) {
      case GEN_DNS:
        out->dns_names.push_back(common::crypto::Asn1StringToUtf8(name->d.dNSName));
        break;
      case GEN_IPADD:
        out->other_names.push_back(absl::StrCat("IP address ", IpText(name->d.iPAddress)));
        break;
      case GEN_URI:
        out->other_names.push_back(absl::StrCat(
            "URI ", common::crypto::Asn1StringToUtf8(name->d.uniformResourceIdentifier)));
        break;
      case GEN_EMAIL:
        out->other_names.push_back(
            absl::StrCat("e-mail address ", common::crypto::Asn1StringToUtf8(name->d.rfc822Name)));
        break;
      case GEN_OTHERNAME:
        out->other_names.push_back(
            absl::StrCat("other name ", Describe(Dotted(name->d.otherName->type_id))));
        break;
      case GEN_DIRNAME:
        out->other_names.push_back("directory name");
        break;
      case GEN_RID:
        out->other_names.push_back("registered ID");
        break;
      default:
        out->other_names.push_back("X.400 or EDI party name");
        break;
    }
  }
}

// The subjectAltName of a request's extension stack (null allowed). InvalidArgument when it is
// present but cannot be decoded.
absl::Status ReadRequestSan(STACK_OF(X509_EXTENSION) * exts, Names* out) {
  if (exts == nullptr) return absl::OkStatus();
  int critical = -1;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, &critical, nullptr)));
  ERR_clear_error();
  if (names == nullptr) {
    if (critical == -1) return absl::OkStatus();
    return absl::InvalidArgumentError(
        critical == -2 ? "the request has two subjectAltName extensions"
                       : "the request's subjectAltName extension cannot be decoded");
  }
  ReadGeneralNames(names.get(), out);
  return absl::OkStatus();
}

// The name rules shared by requests and certificates. `what` is "the request" or "the
// certificate". `require_cn`: a request must carry CN=<fqdn>; a certificate may instead name
// the host by its first SAN DNS name only.
absl::Status CheckNames(const Names& names, absl::string_view fqdn,
                        const CertificateProfile& profile, absl::string_view what,
                        bool require_cn) {
  if (require_cn && names.common_names.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, "'s subject has no CN; it must be CN=", fqdn, ", the agent's registered FQDN"));
  }
  for (const std::string& cn : names.common_names) {
    if (!SameName(cn, fqdn)) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, "'s subject CN '", cn, "' is not the agent's registered FQDN '", fqdn,
                       "': an agent may only have certificates for its own host name"));
    }
  }
  if (!names.other_names.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(what, " has the subjectAltName entry ",
                                                    names.other_names.front(),
                                                    "; only DNS names are allowed"));
  }
  if (names.has_san) {
    if (names.dns_names.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, " has a subjectAltName without DNS names; its first DNS name must be ", fqdn));
    }
    if (!SameName(names.dns_names.front(), fqdn)) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, "'s first subjectAltName DNS name '", names.dns_names.front(),
                       "' is not the agent's registered FQDN '", fqdn,
                       "' (SCOM matches the first DNS name with the computer name)"));
    }
    for (size_t i = 1; i < names.dns_names.size(); ++i) {
      const std::string& dns = names.dns_names[i];
      const bool allowed =
          SameName(dns, fqdn) ||
          std::any_of(profile.extra_dns_names.begin(), profile.extra_dns_names.end(),
                      [&](const std::string& extra) { return SameName(extra, dns); });
      if (!allowed) {
        return absl::PermissionDeniedError(
            absl::StrCat(what, " has the DNS name '", dns, "', which is neither the agent's FQDN '",
                         fqdn, "' nor an extra name of profile '", profile.name,
                         "': an agent may only have certificates for its own host name"));
      }
    }
  }
  if (!names.has_san && names.common_names.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " names no host: it has neither a subject CN nor a SAN DNS name"));
  }
  return absl::OkStatus();
}

std::optional<std::string> StringOf(const ASN1_TYPE* type) {
  if (type == nullptr) return std::nullopt;
  switch (type->type) {
    case V_ASN1_BMPSTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
      return common::crypto::Asn1StringToUtf8(type->value.asn1_string);
    default:
      return std::nullopt;
  }
}

// Checks the values of an AD CS name-value pair attribute: only CertificateTemplate (whose value
// InspectCsr already compared with the template extension). InvalidArgument when a value is not
// a pair; PermissionDenied for any other name ("SAN", ...).
absl::Status CheckNameValuePairs(X509_ATTRIBUTE* attribute) {
  for (int v = 0; v < X509_ATTRIBUTE_count(attribute); ++v) {
    const ASN1_TYPE* value = X509_ATTRIBUTE_get0_type(attribute, v);
    if (value == nullptr || value->type != V_ASN1_SEQUENCE) {
      return absl::InvalidArgumentError(
          "the request's AD CS name-value pair attribute holds a value that is not a pair");
    }
    const unsigned char* p = value->value.sequence->data;
    Asn1SequencePtr pair(
        d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(value->value.sequence->length)));
    ERR_clear_error();
    std::optional<std::string> name;
    if (pair != nullptr && sk_ASN1_TYPE_num(pair.get()) == 2 &&
        StringOf(sk_ASN1_TYPE_value(pair.get(), 1)).has_value()) {
      name = StringOf(sk_ASN1_TYPE_value(pair.get(), 0));
    }
    if (!name.has_value()) {
      return absl::InvalidArgumentError(
          "the request's AD CS name-value pair attribute cannot be decoded");
    }
    if (!SameName(*name, kCertificateTemplatePair)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the request carries the AD CS name-value pair '", *name,
          "'; only CertificateTemplate is allowed (a CA may turn other pairs into names)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAttributes(X509_REQ* csr) {
  for (int i = 0; i < X509_REQ_get_attr_count(csr); ++i) {
    X509_ATTRIBUTE* attribute = X509_REQ_get_attr(csr, i);
    const std::string oid = Dotted(X509_ATTRIBUTE_get0_object(attribute));
    if (oid == common::crypto::kEnrollmentNameValuePairOid) {
      CF_RETURN_IF_ERROR(CheckNameValuePairs(attribute));
      continue;
    }
    if (oid == kExtensionRequestOid || oid == kMsExtensionRequestOid || oid == kOsVersionOid ||
        oid == kClientInfoOid || oid == kCspInfoOid) {
      continue;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the request carries the attribute ", Describe(oid), ", which certfleet does not allow"));
  }
  return absl::OkStatus();
}

absl::Status CheckKey(const common::crypto::CsrInfo& info, const CertificateProfile& profile) {
  if (info.key_algorithm != "RSA") {
    return absl::FailedPreconditionError(
        absl::StrCat("the request's key is ", info.key_algorithm, "; profile '", profile.name,
                     "' needs an RSA key (SCOM can use RSA keys only)"));
  }
  if (info.key_bits < profile.key_bits) {
    return absl::FailedPreconditionError(absl::StrCat("the request's RSA key has ", info.key_bits,
                                                      " bits; profile '", profile.name,
                                                      "' needs at least ", profile.key_bits));
  }
  if (info.key_bits > kMaxRsaKeyBits) {
    return absl::FailedPreconditionError(absl::StrCat("the request's RSA key has ", info.key_bits,
                                                      " bits; certfleet allows at most ",
                                                      kMaxRsaKeyBits));
  }
  return absl::OkStatus();
}

absl::Status CheckExtensions(const common::crypto::CsrInfo& info, STACK_OF(X509_EXTENSION) * exts,
                             const CertificateProfile& profile) {
  for (const std::string& oid : info.extension_oids) {
    if (oid == kSubjectAltNameOid || oid == kKeyUsageOid || oid == kExtendedKeyUsageOid ||
        oid == kBasicConstraintsOid || oid == kSubjectKeyIdentifierOid ||
        oid == common::crypto::kTemplateNameExtensionOid ||
        oid == common::crypto::kTemplateV2ExtensionOid) {
      continue;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the request asks for the extension ", Describe(oid), ", which profile '", profile.name,
        "' does not allow (allowed: subjectAltName, keyUsage, extendedKeyUsage, "
        "basicConstraints CA:FALSE, subjectKeyIdentifier, AD CS template name and template v2)"));
  }
  if (exts != nullptr) {
    int critical = -1;
    BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(
        X509V3_get_d2i(exts, NID_basic_constraints, &critical, nullptr)));
    ERR_clear_error();
    if (bc == nullptr && critical != -1) {
      return absl::InvalidArgumentError(
          "the request's basicConstraints extension cannot be decoded");
    }
    if (bc != nullptr && bc->ca) {
      return absl::FailedPreconditionError(
          "the request asks to be a CA (basicConstraints CA:TRUE); SCOM certificates are "
          "end-entity certificates");
    }
  }
  constexpr uint32_t kCaBits = common::model::kKeyCertSign | common::model::kCrlSign;
  if (info.key_usage & kCaBits) {
    return absl::FailedPreconditionError(
        absl::StrCat("the request asks for the key usage ",
                     absl::StrJoin(common::model::KeyUsageNames(info.key_usage & kCaBits), ", "),
                     ", which only a CA may have"));
  }
  for (const std::string& eku : info.extended_key_usage) {
    if (std::find(profile.extended_key_usage.begin(), profile.extended_key_usage.end(), eku) ==
        profile.extended_key_usage.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the request asks for the extended key usage ", Describe(eku),
                       ", which profile '", profile.name, "' does not list"));
    }
  }
  if (!info.template_name.empty()) {
    if (profile.template_name.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("the request asks for the AD CS template '",
                                                        info.template_name, "'; profile '",
                                                        profile.name, "' has no template"));
    }
    if (!SameName(info.template_name, profile.template_name)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the request asks for the AD CS template '", info.template_name,
                       "'; profile '", profile.name, "' uses '", profile.template_name, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckCsr(absl::string_view csr_pem, absl::string_view agent_fqdn,
                      const CertificateProfile& profile) {
  CF_ASSIGN_OR_RETURN(X509ReqPtr csr, common::crypto::CsrFromPem(csr_pem));
  CF_ASSIGN_OR_RETURN(common::crypto::CsrInfo info, common::crypto::InspectCsr(csr.get()));
  ExtensionStackPtr exts(X509_REQ_get_extensions(csr.get()));
  ERR_clear_error();

  Names names;
  names.common_names = CommonNames(X509_REQ_get_subject_name(csr.get()));
  CF_RETURN_IF_ERROR(ReadRequestSan(exts.get(), &names));
  CF_RETURN_IF_ERROR(CheckNames(names, agent_fqdn, profile, "the request", /*require_cn=*/true));
  // Before the attribute allowlist: a forbidden name-value pair is a name question.
  for (int i = 0; i < X509_REQ_get_attr_count(csr.get()); ++i) {
    X509_ATTRIBUTE* attribute = X509_REQ_get_attr(csr.get(), i);
    if (Dotted(X509_ATTRIBUTE_get0_object(attribute)) ==
        common::crypto::kEnrollmentNameValuePairOid) {
      CF_RETURN_IF_ERROR(CheckNameValuePairs(attribute));
    }
  }
  CF_RETURN_IF_ERROR(CheckKey(info, profile));
  CF_RETURN_IF_ERROR(CheckExtensions(info, exts.get(), profile));
  return CheckAttributes(csr.get());
}

absl::StatusOr<std::string> CheckIssuedChain(absl::string_view chain_pem, absl::string_view csr_pem,
                                             absl::string_view agent_fqdn,
                                             const CertificateProfile& profile, absl::Time now) {
  CF_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, common::crypto::CertificatesFromPem(chain_pem),
                      "the certificate chain");
  CF_ASSIGN_OR_RETURN(X509ReqPtr csr, common::crypto::CsrFromPem(csr_pem), "the request");
  common::crypto::EvpPkeyPtr csr_key = common::crypto::CsrPublicKey(csr.get());
  if (csr_key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the request's public key cannot be decoded");
  }
  auto leaf_it = std::find_if(chain.begin(), chain.end(), [&](const X509Ptr& cert) {
    const EVP_PKEY* key = X509_get0_pubkey(cert.get());
    return key != nullptr && EVP_PKEY_eq(key, csr_key.get()) == 1;
  });
  ERR_clear_error();
  if (leaf_it == chain.end()) {
    return absl::InvalidArgumentError(
        "no certificate in the chain is for the request's public key (signed for another "
        "request?)");
  }
  std::rotate(chain.begin(), leaf_it, leaf_it + 1);
  X509* leaf = chain.front().get();

  Names names;
  names.common_names = CommonNames(X509_get_subject_name(leaf));
  int critical = -1;
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf, NID_subject_alt_name, &critical, nullptr)));
  ERR_clear_error();
  if (san == nullptr && critical != -1) {
    return absl::InvalidArgumentError(
        "the certificate's subjectAltName extension cannot be decoded");
  }
  if (san != nullptr) ReadGeneralNames(san.get(), &names);
  CF_RETURN_IF_ERROR(
      CheckNames(names, agent_fqdn, profile, "the certificate", /*require_cn=*/false));

  CF_ASSIGN_OR_RETURN(common::model::CertificateInfo info,
                      common::crypto::DescribeCertificate(leaf, /*has_private_key=*/false),
                      "the certificate");
  if (info.is_ca) {
    return absl::FailedPreconditionError(
        "the certificate is a CA certificate (basicConstraints CA:TRUE), not an end-entity "
        "certificate");
  }
  const uint32_t missing_ku = profile.key_usage & ~info.key_usage;
  if (!info.has_key_usage || missing_ku != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the certificate's KeyUsage lacks ",
        absl::StrJoin(
            common::model::KeyUsageNames(info.has_key_usage ? missing_ku : profile.key_usage),
            ", "),
        ", which profile '", profile.name, "' requires (SCOM event 20049)"));
  }
  for (const std::string& eku : profile.extended_key_usage) {
    if (std::find(info.extended_key_usage.begin(), info.extended_key_usage.end(), eku) ==
        info.extended_key_usage.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the certificate's extended key usage lacks ", Describe(eku),
                       ", which profile '", profile.name, "' requires (SCOM event 20050)"));
    }
  }
  if (info.not_before > now + kClockSkew) {
    return absl::FailedPreconditionError(absl::StrCat("the certificate is not valid before ",
                                                      absl::FormatTime(info.not_before),
                                                      "; it is not currently valid"));
  }
  if (info.not_after <= now) {
    return absl::FailedPreconditionError(absl::StrCat("the certificate expired at ",
                                                      absl::FormatTime(info.not_after),
                                                      "; it is not currently valid"));
  }

  // A chain that carries its root must hold together: the renewal installs that root on the
  // host, and a host that trusts a root the leaf does not chain to would fail with 20072.
  X509* last = chain.back().get();
  if (chain.size() > 1 && X509_check_issued(last, last) == X509_V_OK) {
    std::vector<X509*> intermediates;
    for (size_t i = 1; i + 1 < chain.size(); ++i) intermediates.push_back(chain[i].get());
    absl::Status verified =
        common::crypto::VerifyChain(leaf, intermediates, {last}, std::max(now, info.not_before));
    if (!verified.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the chain ends in a root the certificate does not chain to: ", verified.message()));
    }
  }
  ERR_clear_error();

  std::string out;
  for (const X509Ptr& cert : chain) out += common::crypto::CertificateToPem(cert.get());
  return out;
}

}  // namespace certfleet::controller::renewal
