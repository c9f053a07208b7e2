#include "common/scom/rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/crypto/describe.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::scom {
namespace {

using ::certfleet::common::crypto::EvpPkeyPtr;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr char kFqdn[] = "host1.example.com";

// Each test issues a real certificate with one defect, describes it as the agent would, and
// judges it with every option set (fqdn, chain, private key).
class RulesTest : public ::testing::Test {
 protected:
  RulesTest() : pki_(TestPki::Create(kNow)) {}

  crypto::CertificateSpec Spec() const { return pki_.ScomLeafSpec(kFqdn); }

  model::CertificateInfo Info(const TestCert& cert, bool has_key = true) const {
    auto info = crypto::DescribeCertificate(cert.cert.get(), has_key);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : model::CertificateInfo();
  }

  EvaluationOptions FullOptions(const TestCert& cert) const {
    EvaluationOptions options;
    options.now = kNow;
    options.fqdn = kFqdn;
    options.chain_trusted = crypto::VerifyChain(cert.cert.get(), {pki_.issuing().cert.get()},
                                                {pki_.root().cert.get()}, kNow)
                                .ok();
    options.require_private_key = true;
    return options;
  }

  std::vector<std::string> Problems(const TestCert& cert, bool has_key = true) const {
    return ProblemNames(Evaluate(Info(cert, has_key), FullOptions(cert)));
  }
  std::vector<std::string> Problems(const crypto::CertificateSpec& spec) const {
    return Problems(pki_.Issue(spec));
  }

  TestPki pki_;
};

TEST_F(RulesTest, CompliantLeafHasNoProblems) { EXPECT_THAT(Problems(Spec()), IsEmpty()); }

TEST_F(RulesTest, ExpiredCertificateIsExpired) {
  auto spec = Spec();
  spec.not_before = kNow - absl::Hours(24 * 400);
  spec.not_after = kNow - absl::Hours(24);
  // The chain check at kNow fails too (the leaf is expired), so judge the chain as trusted.
  TestCert cert = pki_.Issue(spec);
  EvaluationOptions options = FullOptions(cert);
  options.chain_trusted = true;
  EXPECT_THAT(ProblemNames(Evaluate(Info(cert), options)), ElementsAre("EXPIRED"));
}

TEST_F(RulesTest, CertificateValidThroughNotAfterInclusive) {
  auto spec = Spec();
  spec.not_after = kNow + absl::Hours(24 * 100);
  model::CertificateInfo info = Info(pki_.Issue(spec));
  EvaluationOptions options;
  options.now = info.not_after;
  options.warn_within = absl::ZeroDuration();
  options.require_private_key = false;
  EXPECT_THAT(Evaluate(info, options), IsEmpty());
  options.now += absl::Seconds(1);
  EXPECT_THAT(ProblemNames(Evaluate(info, options)), ElementsAre("EXPIRED"));
}

TEST_F(RulesTest, FutureCertificateIsNotYetValid) {
  auto spec = Spec();
  spec.not_before = kNow + absl::Hours(1);
  TestCert cert = pki_.Issue(spec);
  EvaluationOptions options = FullOptions(cert);
  options.chain_trusted = true;
  EXPECT_THAT(ProblemNames(Evaluate(Info(cert), options)), ElementsAre("NOT_YET_VALID"));
}

TEST_F(RulesTest, CertificateEndingWithinTheWarningWindowExpiresSoon) {
  auto spec = Spec();
  spec.not_after = kNow + absl::Hours(24 * 10);
  EXPECT_THAT(Problems(spec), ElementsAre("EXPIRES_SOON"));
  TestCert cert = pki_.Issue(spec);
  EvaluationOptions options = FullOptions(cert);
  options.warn_within = absl::Hours(24 * 5);
  EXPECT_THAT(Evaluate(Info(cert), options), IsEmpty());
}

TEST_F(RulesTest, EcKeyIsKeyNotRsa) {
  EvpPkeyPtr ec = TestPki::NewEcKey();
  EXPECT_THAT(Problems(pki_.Issue(Spec(), ec.get())), ElementsAre("KEY_NOT_RSA"));
}

TEST_F(RulesTest, Rsa1024KeyIsKeyTooSmall) {
  EvpPkeyPtr small = pki_.NewRsaKey(1024);
  EXPECT_THAT(Problems(pki_.Issue(Spec(), small.get())), ElementsAre("KEY_TOO_SMALL"));
}

TEST_F(RulesTest, Sha1SignatureIsAWeakSignatureHash) {
  auto spec = Spec();
  spec.signature_digest = "SHA1";
  EXPECT_THAT(Problems(spec), ElementsAre("WEAK_SIGNATURE_HASH"));
}

TEST_F(RulesTest, Md5AndUnknownHashesAreWeakButSha384IsNot) {
  model::CertificateInfo info = Info(pki_.Issue(Spec()));
  EvaluationOptions options;
  options.now = kNow;
  for (const char* hash : {"MD5", "SHA1", ""}) {
    info.signature_hash = hash;
    EXPECT_THAT(ProblemNames(Evaluate(info, options)), ElementsAre("WEAK_SIGNATURE_HASH")) << hash;
  }
  info.signature_hash = "SHA384";
  EXPECT_THAT(Evaluate(info, options), IsEmpty());
}

TEST_F(RulesTest, ClientAuthOnlyEkuIsMissingServerAuth) {
  auto spec = Spec();
  spec.extended_key_usage = {"1.3.6.1.5.5.7.3.2"};
  EXPECT_THAT(Problems(spec), ElementsAre("MISSING_SERVER_AUTH_EKU"));
}

TEST_F(RulesTest, ServerAuthOnlyEkuIsMissingClientAuth) {
  auto spec = Spec();
  spec.extended_key_usage = {"1.3.6.1.5.5.7.3.1"};
  EXPECT_THAT(Problems(spec), ElementsAre("MISSING_CLIENT_AUTH_EKU"));
}

TEST_F(RulesTest, AbsentEkuExtensionIsMissingBothPurposes) {
  auto spec = Spec();
  spec.extended_key_usage.clear();
  EXPECT_THAT(Problems(spec), ElementsAre("MISSING_SERVER_AUTH_EKU", "MISSING_CLIENT_AUTH_EKU"));
}

TEST_F(RulesTest, KeyUsageWithoutKeyEnciphermentIsMissingKeyUsage) {
  auto spec = Spec();
  spec.key_usage = model::kDigitalSignature;
  EXPECT_THAT(Problems(spec), ElementsAre("MISSING_KEY_USAGE"));
}

TEST_F(RulesTest, KeyUsageWithoutDigitalSignatureIsMissingKeyUsage) {
  auto spec = Spec();
  spec.key_usage = model::kKeyEncipherment | model::kDataEncipherment;
  EXPECT_THAT(Problems(spec), ElementsAre("MISSING_KEY_USAGE"));
}

TEST_F(RulesTest, AbsentKeyUsageExtensionIsNotAProblem) {
  auto spec = Spec();
  spec.key_usage = 0;
  EXPECT_THAT(Problems(spec), IsEmpty());
}

TEST_F(RulesTest, DocsKeyUsageF0IsCompliant) {
  auto spec = Spec();
  spec.key_usage = model::kDigitalSignature | model::kNonRepudiation | model::kKeyEncipherment |
                   model::kDataEncipherment;
  EXPECT_THAT(Problems(spec), IsEmpty());
}

TEST_F(RulesTest, OtherCommonNameIsASubjectMismatch) {
  auto spec = Spec();
  spec.subject_cn = "other.example.com";
  spec.dns_names.clear();
  EXPECT_THAT(Problems(spec), ElementsAre("SUBJECT_MISMATCH"));
}

TEST_F(RulesTest, FirstSanDnsNameWinsOverAMatchingCommonName) {
  auto spec = Spec();
  spec.dns_names = {"other.example.com", kFqdn};
  EXPECT_THAT(Problems(spec), ElementsAre("SUBJECT_MISMATCH"));
}

TEST_F(RulesTest, MatchingFirstSanDnsNameWinsOverAnotherCommonName) {
  auto spec = Spec();
  spec.subject_cn = "Some Friendly Name";
  EXPECT_THAT(Problems(spec), IsEmpty());
}

TEST_F(RulesTest, SanOnlyCertificateMatchesByItsFirstDnsName) {
  auto spec = Spec();
  spec.subject_cn.clear();
  EXPECT_THAT(Problems(spec), IsEmpty());
}

TEST_F(RulesTest, SubjectComparisonIgnoresCase) {
  auto spec = Spec();
  spec.subject_cn = "HOST1.Example.COM";
  spec.dns_names = {"Host1.EXAMPLE.com"};
  EXPECT_THAT(Problems(spec), IsEmpty());
  spec.dns_names.clear();
  EXPECT_THAT(Problems(spec), IsEmpty());
}

TEST_F(RulesTest, SubjectIsNotJudgedWithoutAnFqdn) {
  auto spec = Spec();
  spec.subject_cn = "other.example.com";
  spec.dns_names.clear();
  TestCert cert = pki_.Issue(spec);
  EvaluationOptions options = FullOptions(cert);
  options.fqdn.reset();
  EXPECT_THAT(Evaluate(Info(cert), options), IsEmpty());
}

TEST_F(RulesTest, CertificateWithoutItsKeyHasNoPrivateKey) {
  EXPECT_THAT(Problems(pki_.Issue(Spec()), /*has_key=*/false), ElementsAre("NO_PRIVATE_KEY"));
}

TEST_F(RulesTest, PrivateKeyIsNotJudgedWhenNotRequired) {
  TestCert cert = pki_.Issue(Spec());
  EvaluationOptions options = FullOptions(cert);
  options.require_private_key = false;
  EXPECT_THAT(Evaluate(Info(cert, false), options), IsEmpty());
}

TEST_F(RulesTest, CertificateFromAnotherPkiIsChainUntrusted) {
  TestPki other = TestPki::Create(kNow, "Other CA");
  EXPECT_THAT(Problems(other.Issue(other.ScomLeafSpec(kFqdn))), ElementsAre("CHAIN_UNTRUSTED"));
}

TEST_F(RulesTest, ChainIsNotJudgedWithoutAVerdict) {
  TestPki other = TestPki::Create(kNow, "Other CA");
  TestCert cert = other.Issue(other.ScomLeafSpec(kFqdn));
  EvaluationOptions options = FullOptions(cert);
  options.chain_trusted.reset();
  EXPECT_THAT(Evaluate(Info(cert), options), IsEmpty());
}

TEST_F(RulesTest, CaCertificateIsCa) {
  auto spec = Spec();
  spec.is_ca = true;
  EXPECT_THAT(Problems(spec), ElementsAre("IS_CA"));
}

TEST_F(RulesTest, SeveralDefectsAreReportedInDeclarationOrder) {
  auto spec = Spec();
  spec.signature_digest = "SHA1";
  spec.extended_key_usage.clear();
  spec.is_ca = true;
  spec.not_after = kNow + absl::Hours(24);
  EXPECT_THAT(Problems(pki_.Issue(spec), false),
              ElementsAre("EXPIRES_SOON", "WEAK_SIGNATURE_HASH", "MISSING_SERVER_AUTH_EKU",
                          "MISSING_CLIENT_AUTH_EKU", "NO_PRIVATE_KEY", "IS_CA"));
}

TEST(NameForMatch, IsTheFirstSanDnsNameElseTheCommonName) {
  model::CertificateInfo info;
  info.subject_cn = "cn.example.com";
  EXPECT_EQ(NameForMatch(info), "cn.example.com");
  info.dns_names = {"san1.example.com", "san2.example.com"};
  EXPECT_EQ(NameForMatch(info), "san1.example.com");
  EXPECT_TRUE(SubjectMatches(info, "SAN1.example.com"));
  EXPECT_FALSE(SubjectMatches(info, "san2.example.com"));
}

TEST(SubjectMatches, IsFalseForACertificateWithoutAnyName) {
  EXPECT_FALSE(SubjectMatches(model::CertificateInfo(), ""));
}

}  // namespace
}  // namespace certfleet::common::scom
