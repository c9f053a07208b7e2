#include "common/crypto/describe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

class DescribeTest : public ::testing::Test {
 protected:
  DescribeTest() : pki_(TestPki::Create(kNow)) {}

  model::CertificateInfo Describe(const TestCert& cert, bool has_key = false) {
    auto info = DescribeCertificate(cert.cert.get(), has_key);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : model::CertificateInfo();
  }

  TestPki pki_;
};

TEST_F(DescribeTest, ReadsEveryFieldOfAScomLeaf) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.subject_o = "Example";
  spec.dns_names.push_back("alias.example.com");
  spec.uris = {"spiffe://example.com/host1"};
  spec.ip_addresses = {"192.0.2.10", "2001:db8::1"};
  spec.template_name = "SCOMCertificate";
  TestCert leaf = pki_.Issue(spec);
  model::CertificateInfo info = Describe(leaf, true);

  EXPECT_EQ(info.subject, "CN=host1.example.com,O=Example");
  EXPECT_EQ(info.subject_cn, "host1.example.com");
  EXPECT_EQ(info.issuer, "CN=Test Enterprise CA,O=certfleet tests");
  EXPECT_THAT(info.dns_names, ElementsAre("host1.example.com", "alias.example.com"));
  EXPECT_THAT(info.uris, ElementsAre("spiffe://example.com/host1"));
  EXPECT_EQ(info.serial.size(), 32u);
  EXPECT_EQ(info.not_before, spec.not_before);
  EXPECT_EQ(info.not_after, spec.not_after);
  EXPECT_EQ(info.key_algorithm, "RSA");
  EXPECT_EQ(info.key_bits, 2048);
  EXPECT_EQ(info.signature_hash, "SHA256");
  EXPECT_TRUE(info.has_key_usage);
  EXPECT_EQ(info.key_usage, model::kDigitalSignature | model::kKeyEncipherment);
  EXPECT_THAT(info.extended_key_usage, ElementsAre("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"));
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.template_name, "SCOMCertificate");
  EXPECT_TRUE(info.has_private_key);
}

TEST_F(DescribeTest, ThumbprintsAreTheDigestsOfTheDer) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  model::CertificateInfo info = Describe(leaf);
  EXPECT_EQ(info.thumbprint, Sha1Hex(leaf.der));
  EXPECT_EQ(info.sha256, Sha256Hex(leaf.der));
  // Independently, as `openssl x509 -fingerprint -sha1` computes it.
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(leaf.cert.get(), EVP_sha1(), md, &len), 1);
  EXPECT_EQ(info.thumbprint, HexUpper(std::string(reinterpret_cast<char*>(md), len)));
  EXPECT_EQ(info.thumbprint.size(), 40u);
}

TEST_F(DescribeTest, HighBitSerialKeepsItsSignByteAndTheChannelSerialEndsWithIt) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.serial = std::string("\x00\x80\x11\x22\x33\xAF", 6);
  model::CertificateInfo info = Describe(pki_.Issue(spec));
  EXPECT_EQ(info.serial,
            "00801122"
            "33AF");
  EXPECT_EQ(info.channel_serial,
            "AF332211"
            "8000");
}

TEST_F(DescribeTest, SerialWithoutSignByteIsReversedBytewise) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.serial = "\x01\x3C\x56";
  model::CertificateInfo info = Describe(pki_.Issue(spec));
  EXPECT_EQ(info.serial, "013C56");
  EXPECT_EQ(info.channel_serial, "563C01");
}

TEST_F(DescribeTest, RandomSerialsAreSixteenPositiveBytes) {
  model::CertificateInfo info = Describe(pki_.Issue(pki_.ScomLeafSpec("h.example.com")));
  ASSERT_EQ(info.serial.size(), 32u);
  EXPECT_LT(HexDecode(info.serial)->at(0) & 0x80, 1);
}

TEST_F(DescribeTest, CaCertificatesAreMarkedCa) {
  model::CertificateInfo info = Describe(pki_.root());
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.subject, info.issuer);
  EXPECT_EQ(info.subject, "CN=Test Enterprise CA Root,O=certfleet tests");
  EXPECT_EQ(info.key_usage & model::kKeyCertSign, model::kKeyCertSign);
}

TEST_F(DescribeTest, AbsentKeyUsageAndEkuAreReportedAsAbsent) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.key_usage = 0;
  spec.extended_key_usage.clear();
  model::CertificateInfo info = Describe(pki_.Issue(spec));
  EXPECT_FALSE(info.has_key_usage);
  EXPECT_EQ(info.key_usage, 0u);
  EXPECT_TRUE(info.extended_key_usage.empty());
  EXPECT_TRUE(info.template_name.empty());
}

TEST_F(DescribeTest, ReportsEcKeysAndSha1Signatures) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.signature_digest = "SHA1";
  EvpPkeyPtr ec = TestPki::NewEcKey();
  model::CertificateInfo info = Describe(pki_.Issue(spec, ec.get()));
  EXPECT_EQ(info.key_algorithm, "EC");
  EXPECT_EQ(info.key_bits, 256);
  EXPECT_EQ(info.signature_hash, "SHA1");
}

TEST_F(DescribeTest, ReportsEd25519Keys) {
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed, nullptr);
  model::CertificateInfo info = Describe(pki_.Issue(pki_.ScomLeafSpec("h.example.com"), ed.get()));
  EXPECT_EQ(info.key_algorithm, "ED25519");
}

TEST_F(DescribeTest, ReadsTheTemplateOidExtensionWhenThereIsNoTemplateName) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  // SEQUENCE { OID 1.3.6.1.4.1.311.21.8.1.2, INTEGER 100, INTEGER 0 }
  const unsigned char value[] = {0x30, 0x13, 0x06, 0x0B, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37,
                                 0x15, 0x08, 0x01, 0x02, 0x02, 0x01, 0x64, 0x02, 0x01, 0x00};
  ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
  ASSERT_EQ(ASN1_OCTET_STRING_set(data, value, sizeof(value)), 1);
  ASN1_OBJECT* obj = OBJ_txt2obj("1.3.6.1.4.1.311.21.7", 1);
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, data);
  ASSERT_EQ(X509_add_ext(leaf.cert.get(), ext, -1), 1);
  X509_EXTENSION_free(ext);
  ASN1_OBJECT_free(obj);
  ASN1_OCTET_STRING_free(data);
  ASSERT_GT(X509_sign(leaf.cert.get(), pki_.issuing().key.get(), EVP_sha256()), 0);
  EXPECT_EQ(Describe(leaf).template_name, "1.3.6.1.4.1.311.21.8.1.2");
}

TEST_F(DescribeTest, VerifyChainAcceptsALeafWithItsIntermediateAndRoot) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  EXPECT_TRUE(
      VerifyChain(leaf.cert.get(), {pki_.issuing().cert.get()}, {pki_.root().cert.get()}, kNow)
          .ok());
}

TEST_F(DescribeTest, VerifyChainTreatsAnyGivenRootAsATrustAnchor) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  EXPECT_TRUE(VerifyChain(leaf.cert.get(), {}, {pki_.issuing().cert.get()}, kNow).ok());
}

TEST_F(DescribeTest, VerifyChainFailsWithFailedPreconditionWithoutTheIntermediate) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  absl::Status status = VerifyChain(leaf.cert.get(), {}, {pki_.root().cert.get()}, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("issuer"), std::string::npos) << status;
}

TEST_F(DescribeTest, VerifyChainFailsForAnotherPkisRoot) {
  TestPki other = TestPki::Create(kNow, "Other CA");
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  EXPECT_EQ(
      VerifyChain(leaf.cert.get(), {pki_.issuing().cert.get()}, {other.root().cert.get()}, kNow)
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(DescribeTest, VerifyChainChecksValidityAtTheGivenTime) {
  TestCert leaf = pki_.Issue(pki_.ScomLeafSpec("host1.example.com"));
  absl::Status status = VerifyChain(leaf.cert.get(), {pki_.issuing().cert.get()},
                                    {pki_.root().cert.get()}, kNow + absl::Hours(24 * 400));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("expired"), std::string::npos) << status;
}

}  // namespace
}  // namespace certfleet::common::crypto
