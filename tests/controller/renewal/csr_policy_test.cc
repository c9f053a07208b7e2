#include "controller/renewal/csr_policy.h"

#include <openssl/asn1.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto/csr.h"
#include "common/crypto/issue.h"
#include "common/model/certificate.h"
#include "common/model/profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/renewal/test_csr.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::renewal {
namespace {

using ::certfleet::testing::CsrPem;
using ::certfleet::testing::CustomCsrPem;
using ::certfleet::testing::NameValuePairDer;
using ::certfleet::testing::RawAttribute;
using ::certfleet::testing::ScomCsrOptions;
using ::certfleet::testing::ScomCsrPem;
using ::certfleet::testing::TamperCsrPem;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using common::crypto::EvpPkeyPtr;
using common::model::CertificateProfile;
using ::testing::HasSubstr;

constexpr absl::string_view kFqdn = "scom1.corp.example.com";
constexpr absl::string_view kOtherHost = "dc01.corp.example.com";
const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

class CsrPolicyTest : public ::testing::Test {
 protected:
  CsrPolicyTest() : pki_(TestPki::Create(kNow)), key_(pki_.NewRsaKey(2048)) {}

  absl::Status Check(absl::string_view csr) { return CheckCsr(csr, kFqdn, profile_); }

  TestPki pki_;
  EvpPkeyPtr key_;
  CertificateProfile profile_ = common::model::ScomProfile();
};

TEST_F(CsrPolicyTest, AcceptsWhatTheAgentSendsForItsOwnName) {
  EXPECT_TRUE(Check(ScomCsrPem(key_.get(), kFqdn)).ok());
}

TEST_F(CsrPolicyTest, ComparesTheFqdnIgnoringCase) {
  EXPECT_TRUE(Check(ScomCsrPem(key_.get(), "SCOM1.Corp.Example.COM")).ok());
}

TEST_F(CsrPolicyTest, AcceptsARequestWithoutSubjectAltNameAsTheCertreqInfMakesIt) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.dns_names.clear();
  EXPECT_TRUE(Check(CsrPem(key_.get(), options)).ok());
}

TEST_F(CsrPolicyTest, AcceptsTheKeyUsage0xF0OfScomsInf) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.key_usage = common::model::kDigitalSignature | common::model::kNonRepudiation |
                      common::model::kKeyEncipherment | common::model::kDataEncipherment;
  EXPECT_TRUE(Check(CsrPem(key_.get(), options)).ok());
}

TEST_F(CsrPolicyTest, AcceptsExtraNamesTheProfileLists) {
  profile_.extra_dns_names = {"scom.corp.example.com"};
  EXPECT_TRUE(Check(CsrPem(key_.get(), ScomCsrOptions(kFqdn, {"SCOM.corp.example.com"}))).ok());
}

TEST_F(CsrPolicyTest, AcceptsAKeyLargerThanTheProfileAsksFor) {
  EvpPkeyPtr big = pki_.NewRsaKey(3072);
  EXPECT_TRUE(Check(ScomCsrPem(big.get(), kFqdn)).ok());
}

TEST_F(CsrPolicyTest, AcceptsBasicConstraintsCaFalseAndASubjectKeyIdentifier) {
  std::string csr = CustomCsrPem(key_.get(), kFqdn,
                                 {{"subjectAltName", absl::StrCat("DNS:", kFqdn)},
                                  {"basicConstraints", "CA:FALSE"},
                                  {"subjectKeyIdentifier", "hash"}});
  EXPECT_TRUE(Check(csr).ok()) << Check(csr);
}

TEST_F(CsrPolicyTest, RefusesAnotherHostsNameInTheSubjectCn) {
  absl::Status s = Check(ScomCsrPem(key_.get(), kOtherHost));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr(std::string(kOtherHost)));
  EXPECT_THAT(s.message(), HasSubstr("own host name"));
}

TEST_F(CsrPolicyTest, RefusesAnotherHostsNameInTheSubjectAltNameEvenWithTheRightCn) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn, {std::string(kOtherHost)});
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("DNS name '", kOtherHost, "'")));
}

TEST_F(CsrPolicyTest, RefusesAnotherHostsNameAsTheFirstSubjectAltName) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.dns_names = {std::string(kOtherHost), std::string(kFqdn)};
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("first subjectAltName DNS name"));
}

TEST_F(CsrPolicyTest, RefusesAnExtraNameTheProfileDoesNotList) {
  absl::Status s = Check(CsrPem(key_.get(), ScomCsrOptions(kFqdn, {"www.corp.example.com"})));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("www.corp.example.com"));
  EXPECT_THAT(s.message(), HasSubstr("extra name of profile 'scom'"));
}

TEST_F(CsrPolicyTest, RefusesARequestWithoutSubjectCn) {
  absl::Status s =
      Check(CustomCsrPem(key_.get(), "", {{"subjectAltName", absl::StrCat("DNS:", kFqdn)}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("has no CN"));
}

TEST_F(CsrPolicyTest, RefusesIpUriAndEmailSubjectAltNames) {
  for (const auto& [san, expected] : std::vector<std::pair<std::string, std::string>>{
           {"IP:10.1.2.3", "IP address 10.1.2.3"},
           {"URI:https://dc01.corp.example.com/", "URI https://dc01.corp.example.com/"},
           {"email:admin@corp.example.com", "e-mail address admin@corp.example.com"},
           {"otherName:1.3.6.1.4.1.311.20.2.3;UTF8:administrator@corp.example.com",
            "other name 1.3.6.1.4.1.311.20.2.3"}}) {
    absl::Status s = Check(CustomCsrPem(
        key_.get(), kFqdn, {{"subjectAltName", absl::StrCat("DNS:", kFqdn, ",", san)}}));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << san;
    EXPECT_THAT(s.message(), HasSubstr(expected));
    EXPECT_THAT(s.message(), HasSubstr("only DNS names are allowed"));
  }
}

TEST_F(CsrPolicyTest, RefusesANameValuePairThatACaMightTurnIntoAName) {
  std::string csr =
      CustomCsrPem(key_.get(), kFqdn, {{"subjectAltName", absl::StrCat("DNS:", kFqdn)}},
                   {RawAttribute{"1.3.6.1.4.1.311.13.2.1", V_ASN1_SEQUENCE,
                                 NameValuePairDer("SAN", "dns=dc01.corp.example.com")}});
  absl::Status s = Check(csr);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("name-value pair 'SAN'"));
}

TEST_F(CsrPolicyTest, RefusesAKeySmallerThanTheProfile) {
  EvpPkeyPtr small = pki_.NewRsaKey(1024);
  absl::Status s = Check(ScomCsrPem(small.get(), kFqdn));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("has 1024 bits"));
  EXPECT_THAT(s.message(), HasSubstr("at least 2048"));
}

TEST_F(CsrPolicyTest, RefusesA2048BitKeyWhenTheProfileAsksFor3072) {
  profile_.key_bits = 3072;
  absl::Status s = Check(ScomCsrPem(key_.get(), kFqdn));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("at least 3072"));
}

TEST_F(CsrPolicyTest, RefusesAnEcKey) {
  EvpPkeyPtr ec = TestPki::NewEcKey();
  absl::Status s = Check(ScomCsrPem(ec.get(), kFqdn));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("key is EC"));
  EXPECT_THAT(s.message(), HasSubstr("needs an RSA key"));
}

TEST_F(CsrPolicyTest, RefusesARequestWhoseSignatureNoLongerMatches) {
  // An attacker edits a genuine request's name: the signature no longer covers it.
  std::string tampered = TamperCsrPem(ScomCsrPem(key_.get(), kFqdn), "scom1", "scom2");
  absl::Status s = Check(tampered);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("signature"));
}

TEST_F(CsrPolicyTest, RefusesTextThatIsNotARequest) {
  absl::Status s = Check("hello");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Check(pki_.issuing().cert_pem).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CsrPolicyTest, RefusesAnExtensionOutsideTheAllowedSet) {
  std::string csr = CustomCsrPem(
      key_.get(), kFqdn,
      {{"subjectAltName", absl::StrCat("DNS:", kFqdn)}, {"1.2.3.4.5.6", "ASN1:UTF8String:please"}});
  absl::Status s = Check(csr);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("extension 1.2.3.4.5.6"));
  EXPECT_THAT(s.message(), HasSubstr("does not allow"));
}

TEST_F(CsrPolicyTest, NamesAKnownExtensionItRefuses) {
  std::string csr =
      CustomCsrPem(key_.get(), kFqdn, {{"authorityInfoAccess", "caIssuers;URI:http://x.example/"}});
  absl::Status s = Check(csr);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("1.3.6.1.5.5.7.1.1 (Authority Information Access)"));
}

TEST_F(CsrPolicyTest, RefusesARequestToBeACa) {
  absl::Status s = Check(CustomCsrPem(key_.get(), kFqdn, {{"basicConstraints", "CA:TRUE"}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("CA:TRUE"));
}

TEST_F(CsrPolicyTest, RefusesCaKeyUsages) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.key_usage |= common::model::kKeyCertSign;
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("keyCertSign"));
}

TEST_F(CsrPolicyTest, RefusesAnExtendedKeyUsageTheProfileDoesNotList) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.extended_key_usage.push_back("1.3.6.1.5.5.7.3.3");  // code signing
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("1.3.6.1.5.5.7.3.3"));
}

TEST_F(CsrPolicyTest, AcceptsTheProfilesTemplateAndRefusesAnother) {
  profile_.template_name = "SCOMCert";
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.template_name = "scomcert";
  EXPECT_TRUE(Check(CsrPem(key_.get(), options)).ok());

  options.template_name = "DomainController";
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("template 'DomainController'"));
  EXPECT_THAT(s.message(), HasSubstr("uses 'SCOMCert'"));
}

TEST_F(CsrPolicyTest, RefusesATemplateWhenTheProfileHasNone) {
  common::crypto::CsrOptions options = ScomCsrOptions(kFqdn);
  options.template_name = "WebServer";
  absl::Status s = Check(CsrPem(key_.get(), options));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("has no template"));
}

TEST_F(CsrPolicyTest, RefusesAnAttributeOutsideTheAllowedSet) {
  std::string csr = CustomCsrPem(key_.get(), kFqdn, {},
                                 {RawAttribute{"1.2.840.113549.1.9.7", V_ASN1_UTF8STRING, "pw"}});
  absl::Status s = Check(csr);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("attribute 1.2.840.113549.1.9.7"));
}

class IssuedChainTest : public CsrPolicyTest {
 protected:
  IssuedChainTest() : csr_(ScomCsrPem(key_.get(), kFqdn)) {}

  TestCert IssueFor(const common::crypto::CertificateSpec& spec) {
    return pki_.Issue(spec, key_.get());
  }
  absl::StatusOr<std::string> Check(absl::string_view chain) {
    return CheckIssuedChain(chain, csr_, kFqdn, profile_, kNow);
  }

  std::string csr_;
};

TEST_F(IssuedChainTest, AcceptsACertificateForTheRequestAndPutsItFirst) {
  TestCert leaf = IssueFor(pki_.ScomLeafSpec(kFqdn));
  auto chain = Check(pki_.root().cert_pem + leaf.cert_pem + pki_.issuing().cert_pem);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(*chain, leaf.cert_pem + pki_.root().cert_pem + pki_.issuing().cert_pem);
}

TEST_F(IssuedChainTest, AcceptsACertificateThatNamesTheHostOnlyInItsSubjectAltName) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.subject_cn.clear();
  spec.subject_o = "Corp";
  EXPECT_TRUE(Check(IssueFor(spec).cert_pem).ok());
}

TEST_F(IssuedChainTest, RefusesACertificateForAnotherKey) {
  TestCert other = pki_.Issue(pki_.ScomLeafSpec(kFqdn));
  auto chain = Check(other.cert_pem + pki_.ChainPem());
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(chain.status().message(), HasSubstr("request's public key"));
}

TEST_F(IssuedChainTest, RefusesACertificateForAnotherHost) {
  auto chain = Check(IssueFor(pki_.ScomLeafSpec(kOtherHost)).cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(chain.status().message(), HasSubstr(std::string(kOtherHost)));
}

TEST_F(IssuedChainTest, RefusesACertificateWithAnIpAddress) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.ip_addresses = {"10.0.0.7"};
  auto chain = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(chain.status().message(), HasSubstr("IP address 10.0.0.7"));
}

TEST_F(IssuedChainTest, RefusesACertificateWithoutClientAuthentication) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.extended_key_usage = {std::string(common::model::kServerAuthOid)};
  auto chain = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(chain.status().message(), HasSubstr("1.3.6.1.5.5.7.3.2"));
  EXPECT_THAT(chain.status().message(), HasSubstr("20050"));
}

TEST_F(IssuedChainTest, RefusesACertificateWithoutKeyEncipherment) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.key_usage = common::model::kDigitalSignature;
  auto chain = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(chain.status().message(), HasSubstr("lacks keyEncipherment"));
}

TEST_F(IssuedChainTest, RefusesACertificateThatIsNotCurrentlyValid) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.not_before = kNow - absl::Hours(48);
  spec.not_after = kNow - absl::Hours(1);
  auto expired = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));

  spec.not_before = kNow + absl::Hours(1);
  spec.not_after = kNow + absl::Hours(100);
  auto future = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(future.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(future.status().message(), HasSubstr("not currently valid"));

  spec.not_before = kNow + absl::Minutes(2);  // within the allowed clock skew
  EXPECT_TRUE(Check(IssueFor(spec).cert_pem + pki_.ChainPem()).ok());
}

TEST_F(IssuedChainTest, RefusesACaCertificate) {
  common::crypto::CertificateSpec spec = pki_.ScomLeafSpec(kFqdn);
  spec.is_ca = true;
  auto chain = Check(IssueFor(spec).cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(chain.status().message(), HasSubstr("CA certificate"));
}

TEST_F(IssuedChainTest, RefusesAChainEndingInAnUnrelatedRoot) {
  TestPki other = TestPki::Create(kNow, "Other CA");
  TestCert leaf = IssueFor(pki_.ScomLeafSpec(kFqdn));
  auto chain = Check(leaf.cert_pem + other.root().cert_pem);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(chain.status().message(), HasSubstr("does not chain to"));
}

TEST_F(IssuedChainTest, RefusesTextWithoutCertificates) {
  EXPECT_EQ(Check("nothing here").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::controller::renewal
