#include "common/crypto/csr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/model/certificate.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestPki;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

constexpr char kExtensionRequestOid[] = "1.2.840.113549.1.9.14";
constexpr char kSubjectAltNameOid[] = "2.5.29.17";
constexpr char kKeyUsageOid[] = "2.5.29.15";
constexpr char kExtendedKeyUsageOid[] = "2.5.29.37";

// What a renewal under the "scom" profile with a template asks for.
CsrOptions ScomOptions() {
  CsrOptions options;
  options.subject_cn = "host1.example.com";
  options.dns_names = {"host1.example.com", "scom-gw.example.com"};
  options.key_usage = model::kDigitalSignature | model::kKeyEncipherment;
  options.extended_key_usage = {std::string(model::kServerAuthOid),
                                std::string(model::kClientAuthOid)};
  options.template_name = "SCOMCert";
  options.signature_digest = "SHA384";
  return options;
}

CsrOptions AgentOptions() {
  CsrOptions options;
  options.subject_cn = "agent";
  return options;
}

X509ReqPtr Build(EVP_PKEY* key, const CsrOptions& options) {
  auto csr = BuildCsr(key, options);
  EXPECT_TRUE(csr.ok()) << csr.status();
  return csr.ok() ? std::move(*csr) : nullptr;
}

CsrInfo Inspect(X509_REQ* csr) {
  auto info = InspectCsr(csr);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : CsrInfo{};
}

// The DER of a BMPString, for hand-built requests.
std::string BmpDer(const std::string& text) {
  ASN1_STRING* bmp = nullptr;
  EXPECT_GE(ASN1_mbstring_copy(&bmp, reinterpret_cast<const unsigned char*>(text.data()),
                               static_cast<int>(text.size()), MBSTRING_UTF8, B_ASN1_BMPSTRING),
            0);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_BMPSTRING(bmp, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  ASN1_STRING_free(bmp);
  return out;
}

// An extension `oid` with the raw value `der`.
X509_EXTENSION* RawExtension(const char* oid, const std::string& der, bool critical = false) {
  ASN1_OBJECT* object = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(value, reinterpret_cast<const unsigned char*>(der.data()),
                        static_cast<int>(der.size()));
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, object, critical ? 1 : 0, value);
  ASN1_OBJECT_free(object);
  ASN1_OCTET_STRING_free(value);
  return ext;
}

// A request for `key` signed with SHA-256 carrying exactly `extensions` (taken) and, when
// `template_attribute` is set, the CertificateTemplate name-value pair attribute naming it.
X509ReqPtr HandBuilt(EVP_PKEY* key, std::vector<X509_EXTENSION*> extensions,
                     const std::string& template_attribute = "") {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("hand"), -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key);
  if (!extensions.empty()) {
    STACK_OF(X509_EXTENSION)* stack = sk_X509_EXTENSION_new_null();
    for (X509_EXTENSION* ext : extensions) sk_X509_EXTENSION_push(stack, ext);
    EXPECT_EQ(X509_REQ_add_extensions(req.get(), stack), 1);
    sk_X509_EXTENSION_pop_free(stack, X509_EXTENSION_free);
  }
  if (!template_attribute.empty()) {
    const std::string content =
        absl::StrCat(BmpDer("CertificateTemplate"), BmpDer(template_attribute));
    EXPECT_LT(content.size(), 128u);
    const std::string pair =
        absl::StrCat("\x30", std::string(1, static_cast<char>(content.size())), content);
    ASN1_OBJECT* object = OBJ_txt2obj(kEnrollmentNameValuePairOid.data(), 1);
    EXPECT_EQ(X509_REQ_add1_attr_by_OBJ(req.get(), object, V_ASN1_SEQUENCE,
                                        reinterpret_cast<const unsigned char*>(pair.data()),
                                        static_cast<int>(pair.size())),
              1);
    ASN1_OBJECT_free(object);
  }
  EXPECT_GT(X509_REQ_sign(req.get(), key, EVP_sha256()), 0);
  return req;
}

// Runs `command` through the shell and returns its standard output; fails the test on a
// non-zero exit.
std::string RunShell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (pipe == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << out;
  return out;
}

TEST(Csr, RoundTripsThroughPemAndReportsWhatItAsksFor) {
  auto pki = TestPki::Create(kNow);
  EvpPkeyPtr key = pki.NewRsaKey();
  CsrOptions options;
  options.subject_cn = "host1.example.com";
  options.dns_names = {"host1.example.com", "host1"};
  options.uris = {"urn:certfleet:agent:7"};
  auto csr = BuildCsr(key.get(), options);
  ASSERT_TRUE(csr.ok()) << csr.status();
  std::string pem = CsrToPem(csr->get());
  EXPECT_NE(pem.find("-----BEGIN CERTIFICATE REQUEST-----"), std::string::npos);

  auto back = CsrFromPem(pem);
  ASSERT_TRUE(back.ok()) << back.status();
  auto info = InspectCsr(back->get());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject_cn, "host1.example.com");
  EXPECT_THAT(info->dns_names, ElementsAre("host1.example.com", "host1"));
  EXPECT_THAT(info->uris, ElementsAre("urn:certfleet:agent:7"));
  EXPECT_EQ(info->key_algorithm, "RSA");
  EXPECT_EQ(info->key_bits, 2048);
  EXPECT_EQ(info->signature_digest, "SHA256");
  EXPECT_FALSE(info->has_key_usage);
  EXPECT_THAT(info->extended_key_usage, IsEmpty());
  EXPECT_THAT(info->extension_oids, ElementsAre(kSubjectAltNameOid));
  EXPECT_THAT(info->attribute_oids, ElementsAre(kExtensionRequestOid));
  EXPECT_EQ(info->template_name, "");
  EvpPkeyPtr pub = CsrPublicKey(back->get());
  EXPECT_EQ(EVP_PKEY_eq(pub.get(), key.get()), 1);
}

TEST(Csr, AProfileRequestCarriesKeyUsageEkuTemplateAndDigest) {
  auto pki = TestPki::Create(kNow);
  EvpPkeyPtr key = pki.NewRsaKey(3072);
  X509ReqPtr csr = Build(key.get(), ScomOptions());
  ASSERT_NE(csr, nullptr);
  auto back = CsrFromPem(CsrToPem(csr.get()));
  ASSERT_TRUE(back.ok()) << back.status();

  CsrInfo info = Inspect(back->get());

  EXPECT_EQ(info.subject_cn, "host1.example.com");
  EXPECT_THAT(info.dns_names, ElementsAre("host1.example.com", "scom-gw.example.com"));
  EXPECT_EQ(info.key_bits, 3072);
  EXPECT_EQ(info.signature_digest, "SHA384");
  EXPECT_TRUE(info.has_key_usage);
  EXPECT_EQ(info.key_usage, model::kDigitalSignature | model::kKeyEncipherment);
  EXPECT_TRUE(info.key_usage_critical);
  EXPECT_THAT(info.extended_key_usage, ElementsAre(model::kServerAuthOid, model::kClientAuthOid));
  EXPECT_THAT(info.extension_oids, ElementsAre(kSubjectAltNameOid, kKeyUsageOid,
                                               kExtendedKeyUsageOid, kTemplateNameExtensionOid));
  EXPECT_THAT(info.attribute_oids, ElementsAre(kEnrollmentNameValuePairOid, kExtensionRequestOid));
  EXPECT_EQ(info.template_name, "SCOMCert");
}

TEST(Csr, EveryKeyUsageBitRoundTrips) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  for (int bit = 0; bit <= 8; ++bit) {
    SCOPED_TRACE(bit);
    CsrOptions options;
    options.subject_cn = "agent";
    options.key_usage = 1u << bit;
    X509ReqPtr csr = Build(key.get(), options);
    ASSERT_NE(csr, nullptr);
    CsrInfo info = Inspect(csr.get());
    EXPECT_EQ(info.key_usage, 1u << bit);
    EXPECT_TRUE(info.key_usage_critical);
  }
}

TEST(Csr, TheSignatureDigestIsTheOneAskedFor) {
  auto pki = TestPki::Create(kNow);
  EvpPkeyPtr key = pki.NewRsaKey();
  for (const char* digest : {"SHA256", "SHA384", "SHA512", "sha512"}) {
    SCOPED_TRACE(digest);
    CsrOptions options;
    options.subject_cn = "agent";
    options.signature_digest = digest;
    X509ReqPtr csr = Build(key.get(), options);
    ASSERT_NE(csr, nullptr);
    EXPECT_EQ(Inspect(csr.get()).signature_digest, absl::AsciiStrToUpper(digest));
  }
}

TEST(Csr, BadOptionsAreInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  auto build = [&](const std::function<void(CsrOptions&)>& change) {
    CsrOptions options = ScomOptions();
    change(options);
    return BuildCsr(key.get(), options).status();
  };
  for (const char* digest : {"SHA1", "MD5", "", "SHA3-256"}) {
    absl::Status status = build([&](CsrOptions& o) { o.signature_digest = digest; });
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << digest;
  }
  absl::Status status = build([](CsrOptions& o) { o.extended_key_usage = {"serverAuth"}; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("serverAuth"));
  EXPECT_EQ(build([](CsrOptions& o) { o.key_usage = 1u << 9; }).code(),
            absl::StatusCode::kInvalidArgument);
  // U+1F512, outside the Basic Multilingual Plane.
  EXPECT_EQ(build([](CsrOptions& o) { o.template_name = "Lock\xF0\x9F\x94\x92"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildCsr(nullptr, ScomOptions()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Csr, TheTemplateIsReadFromEitherPlace) {
  EvpPkeyPtr key = TestPki::NewEcKey();

  X509ReqPtr attribute_only = HandBuilt(key.get(), {}, "WebServer");
  CsrInfo info = Inspect(attribute_only.get());
  EXPECT_EQ(info.template_name, "WebServer");
  EXPECT_THAT(info.extension_oids, IsEmpty());
  EXPECT_THAT(info.attribute_oids, ElementsAre(kEnrollmentNameValuePairOid));

  X509ReqPtr extension_only =
      HandBuilt(key.get(), {RawExtension(kTemplateNameExtensionOid.data(), BmpDer("Machine"))});
  info = Inspect(extension_only.get());
  EXPECT_EQ(info.template_name, "Machine");
  EXPECT_THAT(info.extension_oids, ElementsAre(kTemplateNameExtensionOid));

  // Template v2: SEQUENCE { OID 1.3.6.1.4.1.311.21.8.1.2, INTEGER 100, INTEGER 3 }.
  const std::string v2(
      "\x30\x13\x06\x0b\x2b\x06\x01\x04\x01\x82\x37\x15\x08\x01\x02"
      "\x02\x01\x64\x02\x01\x03",
      21);
  X509ReqPtr v2_only = HandBuilt(key.get(), {RawExtension(kTemplateV2ExtensionOid.data(), v2)});
  info = Inspect(v2_only.get());
  EXPECT_EQ(info.template_name, "1.3.6.1.4.1.311.21.8.1.2");
  EXPECT_THAT(info.extension_oids, ElementsAre(kTemplateV2ExtensionOid));
}

TEST(Csr, TwoDifferentTemplatesAreInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  X509ReqPtr agreeing = HandBuilt(
      key.get(), {RawExtension(kTemplateNameExtensionOid.data(), BmpDer("scomcert"))}, "SCOMCert");
  EXPECT_EQ(Inspect(agreeing.get()).template_name, "SCOMCert");

  X509ReqPtr conflicting = HandBuilt(
      key.get(), {RawExtension(kTemplateNameExtensionOid.data(), BmpDer("DomainController"))},
      "SCOMCert");
  auto info = InspectCsr(conflicting.get());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("DomainController"));
}

TEST(Csr, UnknownExtensionsAreListedForThePolicyToJudge) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  X509ReqPtr csr = HandBuilt(
      key.get(), {RawExtension("1.2.3.4.5", std::string("\x05\x00", 2)),
                  RawExtension("2.5.29.19", std::string("\x30\x03\x01\x01\xff", 5), true)});
  CsrInfo info = Inspect(csr.get());
  EXPECT_THAT(info.extension_oids, ElementsAre("1.2.3.4.5", "2.5.29.19"));
  EXPECT_FALSE(info.has_key_usage);
}

TEST(Csr, AnExtensionRequestedTwiceIsInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  X509ReqPtr csr = HandBuilt(key.get(), {RawExtension("1.2.3.4.5", std::string("\x05\x00", 2)),
                                         RawExtension("1.2.3.4.5", std::string("\x05\x00", 2))});
  auto info = InspectCsr(csr.get());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("1.2.3.4.5"));
}

TEST(Csr, AMalformedKeyUsageIsInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  // An OCTET STRING where a BIT STRING belongs.
  X509ReqPtr csr =
      HandBuilt(key.get(), {RawExtension(kKeyUsageOid, std::string("\x04\x01\xa0", 3), true)});
  EXPECT_EQ(InspectCsr(csr.get()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Csr, OpenSslSeesTheAttributeAndExtensionsWeRequest) {
  auto pki = TestPki::Create(kNow);
  EvpPkeyPtr key = pki.NewRsaKey();
  X509ReqPtr csr = Build(key.get(), ScomOptions());
  ASSERT_NE(csr, nullptr);
  const std::string dir = ::testing::TempDir();
  const std::string path = absl::StrCat(dir, "/csr_test_", getpid(), ".pem");
  {
    std::ofstream out(path);
    out << CsrToPem(csr.get());
  }

  const std::string text =
      RunShell(absl::StrCat("openssl req -in '", path, "' -noout -text -verify 2>&1"));
  const std::string asn1 = RunShell(absl::StrCat("openssl asn1parse -in '", path, "' 2>&1"));
  std::filesystem::remove(path);

  EXPECT_THAT(text, HasSubstr("verify OK"));
  EXPECT_THAT(text, HasSubstr("Subject: CN = host1.example.com"));
  EXPECT_THAT(text, HasSubstr("Signature Algorithm: sha384WithRSAEncryption"));
  EXPECT_THAT(text, HasSubstr("Requested Extensions:"));
  EXPECT_THAT(text,
              HasSubstr("X509v3 Subject Alternative Name: \n"
                        "                    DNS:host1.example.com, DNS:scom-gw.example.com"));
  EXPECT_THAT(text, HasSubstr("X509v3 Key Usage: critical\n"
                              "                    Digital Signature, Key Encipherment\n"));
  EXPECT_THAT(text, HasSubstr("X509v3 Extended Key Usage: \n"
                              "                    TLS Web Server Authentication, TLS Web Client "
                              "Authentication\n"));
  // OpenSSL has no name for either Microsoft OID and prints the template extension's raw bytes,
  // the BMPString "SCOMCert" with its tag and length.
  EXPECT_THAT(text, HasSubstr("1.3.6.1.4.1.311.20.2: \n"
                              "                    ...S.C.O.M.C.e.r.t"));
  EXPECT_THAT(text, HasSubstr("1.3.6.1.4.1.311.13.2.1   :unable to print attribute"));
  // The attribute's value, structurally: SET { SEQUENCE { BMPString "CertificateTemplate" (19
  // characters, 38 bytes), BMPString "SCOMCert" (16 bytes) } }; and the extension's BMPString.
  EXPECT_THAT(asn1, ContainsRegex(":1\\.3\\.6\\.1\\.4\\.1\\.311\\.13\\.2\\.1\n"
                                  "[^\n]*cons: SET *\n"
                                  "[^\n]*cons: SEQUENCE *\n"
                                  "[^\n]*l= *38 prim: BMPSTRING *\n"
                                  "[^\n]*l= *16 prim: BMPSTRING *\n"));
  EXPECT_THAT(asn1, ContainsRegex(":1\\.3\\.6\\.1\\.4\\.1\\.311\\.20\\.2 *\n"
                                  "[^\n]*OCTET STRING *\\[HEX DUMP\\]:"
                                  "1E1000530043004F004D0043006500720074\n"));
  EXPECT_THAT(asn1, Not(HasSubstr("error")));
}

TEST(Csr, EcKeysAreSupported) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  auto csr = BuildCsr(key.get(), AgentOptions());
  ASSERT_TRUE(csr.ok()) << csr.status();
  auto info = InspectCsr(csr->get());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->key_algorithm, "EC");
  EXPECT_EQ(info->signature_digest, "SHA256");
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_THAT(info->extension_oids, IsEmpty());
  EXPECT_THAT(info->attribute_oids, IsEmpty());
}

TEST(Csr, TamperedRequestFailsInspectionWithInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  auto csr = BuildCsr(key.get(), AgentOptions());
  ASSERT_TRUE(csr.ok());
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(csr->get(), &der);
  ASSERT_GT(len, 0);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  // The CN "agent" is inside the signed part; change one of its letters.
  size_t pos = bytes.find("agent");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos] = 'b';
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  X509ReqPtr tampered(d2i_X509_REQ(nullptr, &p, static_cast<long>(bytes.size())));
  ASSERT_NE(tampered, nullptr);
  EXPECT_EQ(InspectCsr(tampered.get()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Csr, ATamperedTemplateFailsInspectionWithInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  X509ReqPtr csr = Build(key.get(), ScomOptions());
  ASSERT_NE(csr, nullptr);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(csr.get(), &der);
  ASSERT_GT(len, 0);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  // "SCOMCert" as a BMPString: the 'S' of the value (after the name pair's own 'S').
  const std::string s_bmp(
      "\x00S\x00"
      "C\x00O",
      6);
  size_t pos = bytes.find(s_bmp);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 1] = 'X';
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  X509ReqPtr tampered(d2i_X509_REQ(nullptr, &p, static_cast<long>(bytes.size())));
  ASSERT_NE(tampered, nullptr);
  EXPECT_EQ(InspectCsr(tampered.get()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Csr, CsrFromPemRejectsTextWithoutARequest) {
  EXPECT_EQ(CsrFromPem("garbage").status().code(), absl::StatusCode::kInvalidArgument);
  auto pki = TestPki::Create(kNow);
  EXPECT_EQ(CsrFromPem(pki.root().cert_pem).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::common::crypto
