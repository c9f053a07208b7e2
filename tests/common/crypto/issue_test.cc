#include "common/crypto/issue.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include "common/crypto/describe.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestPki;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

class IssueTest : public ::testing::Test {
 protected:
  IssueTest() : pki_(TestPki::Create(kNow)), key_(pki_.NewRsaKey()) {}

  absl::StatusOr<X509Ptr> Issue(const CertificateSpec& spec) {
    return IssueCertificate(spec, key_.get(), pki_.issuing().cert.get(), pki_.issuing().key.get());
  }

  TestPki pki_;
  EvpPkeyPtr key_;
};

TEST_F(IssueTest, SelfSignedCaHasCriticalBasicConstraintsAndMatchingKeyIdentifiers) {
  CertificateSpec spec;
  spec.subject_cn = "Self CA";
  spec.is_ca = true;
  spec.path_len = 1;
  spec.key_usage = model::kKeyCertSign | model::kCrlSign;
  spec.not_before = kNow;
  spec.not_after = kNow + absl::Hours(24);
  auto cert = IssueCertificate(spec, key_.get(), nullptr, key_.get());
  ASSERT_TRUE(cert.ok()) << cert.status();
  int crit = -1;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert->get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(crit, 1);
  EXPECT_NE(bc->ca, 0);
  EXPECT_EQ(ASN1_INTEGER_get(bc->pathlen), 1);
  BASIC_CONSTRAINTS_free(bc);
  X509_get_ext_d2i(cert->get(), NID_key_usage, &crit, nullptr);
  EXPECT_EQ(crit, 1);
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert->get());
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert->get());
  ASSERT_NE(ski, nullptr);
  ASSERT_NE(aki, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(ski, aki), 0);
  EXPECT_EQ(X509_verify(cert->get(), key_.get()), 1);
}

TEST_F(IssueTest, LeafAuthorityKeyIdIsTheIssuersSubjectKeyId) {
  auto cert = Issue(pki_.ScomLeafSpec("host1.example.com"));
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert->get()),
                                  X509_get0_subject_key_id(pki_.issuing().cert.get())),
            0);
  EXPECT_EQ(X509_verify(cert->get(), pki_.issuing().key.get()), 1);
}

TEST_F(IssueTest, SubjectAltNamesIncludeDnsIpAndUriEntries) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.ip_addresses = {"192.0.2.1", "2001:db8::2"};
  spec.uris = {"urn:certfleet:agent:1"};
  auto cert = Issue(spec);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  std::vector<int> types;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    types.push_back(sk_GENERAL_NAME_value(names, i)->type);
  }
  GENERAL_NAMES_free(names);
  EXPECT_EQ(types, (std::vector<int>{GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_URI}));
  EXPECT_EQ(X509_check_ip_asc(cert->get(), "192.0.2.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert->get(), "2001:db8::2", 0), 1);
}

TEST_F(IssueTest, SanOnlyCertificateHasAnEmptySubject) {
  CertificateSpec spec = pki_.ScomLeafSpec("host1.example.com");
  spec.subject_cn.clear();
  auto cert = Issue(spec);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto info = DescribeCertificate(cert->get(), false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subject, "");
  EXPECT_EQ(info->subject_cn, "");
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"host1.example.com"});
}

TEST_F(IssueTest, RejectsNotAfterBeforeNotBeforeWithInvalidArgument) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.not_after = spec.not_before - absl::Seconds(1);
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, RejectsBadIpTextWithInvalidArgument) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.ip_addresses = {"300.1.1.1"};
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, RejectsAnUnknownDigestWithInvalidArgument) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.signature_digest = "NOPE512";
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, RejectsABadEkuOidWithInvalidArgument) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.extended_key_usage = {"not an oid"};
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, RejectsNegativeAndNonMinimalSerialsWithInvalidArgument) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.serial = "\x80\x01";
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.serial = std::string("\x00\x01", 2);
  EXPECT_EQ(Issue(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, RejectsSelfSigningWithAnotherKeyAndAWrongIssuerKey) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  EXPECT_EQ(IssueCertificate(spec, key_.get(), nullptr, pki_.root().key.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IssueCertificate(spec, key_.get(), pki_.issuing().cert.get(), pki_.root().key.get())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IssueTest, Sha1DigestCanBeSelectedForWeakHashTests) {
  CertificateSpec spec = pki_.ScomLeafSpec("h.example.com");
  spec.signature_digest = "SHA1";
  auto cert = Issue(spec);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(X509_get_signature_nid(cert->get()), NID_sha1WithRSAEncryption);
}

}  // namespace
}  // namespace certfleet::common::crypto
