#include "tests/testing/test_pki.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/scom/rules.h"
#include "tests/testing/fake_clock.h"

namespace certfleet::testing {
namespace {

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

TEST(TestPki, LeafChainsToTheRootThroughTheIssuingCa) {
  TestPki pki = TestPki::Create(kNow);
  TestCert leaf = pki.Issue(pki.ScomLeafSpec("host1.example.com"));
  EXPECT_TRUE(common::crypto::VerifyChain(leaf.cert.get(), {pki.issuing().cert.get()},
                                          {pki.root().cert.get()}, kNow)
                  .ok());
  auto chain = common::crypto::CertificatesFromPem(pki.ChainPem());
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(common::crypto::CertificateToDer((*chain)[0].get()), pki.issuing().der);
  EXPECT_EQ(common::crypto::CertificateToDer((*chain)[1].get()), pki.root().der);
}

TEST(TestPki, ScomLeafSpecIsCompliant) {
  TestPki pki = TestPki::Create(kNow);
  TestCert leaf = pki.Issue(pki.ScomLeafSpec("host1.example.com"));
  auto info = common::crypto::DescribeCertificate(leaf.cert.get(), true);
  ASSERT_TRUE(info.ok()) << info.status();
  common::scom::EvaluationOptions options;
  options.now = kNow;
  options.fqdn = "host1.example.com";
  options.chain_trusted = true;
  EXPECT_TRUE(common::scom::Evaluate(*info, options).empty());
}

TEST(TestPki, EveryKeyOfOnePkiIsDistinctAndMatchesItsCertificate) {
  TestPki pki = TestPki::Create(kNow);
  TestCert a = pki.Issue(pki.ScomLeafSpec("a.example.com"));
  TestCert b = pki.Issue(pki.ScomLeafSpec("b.example.com"));
  std::set<std::string> keys;
  for (const TestCert* c : std::vector<const TestCert*>{&pki.root(), &pki.issuing(), &a, &b}) {
    EXPECT_TRUE(common::crypto::KeyMatchesCertificate(c->key.get(), c->cert.get()));
    keys.insert(common::crypto::PublicKeyDer(c->key.get()));
  }
  EXPECT_EQ(keys.size(), 4u);
}

TEST(TestPki, TestCertFieldsDescribeTheSameCertificateAndKey) {
  TestPki pki = TestPki::Create(kNow);
  TestCert leaf = pki.Issue(pki.ScomLeafSpec("a.example.com"));
  EXPECT_EQ(common::crypto::CertificateToDer(leaf.cert.get()), leaf.der);
  EXPECT_EQ(common::crypto::CertificateToPem(leaf.cert.get()), leaf.cert_pem);
  auto key = common::crypto::PrivateKeyFromPem(leaf.key_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(EVP_PKEY_eq(key->get(), leaf.key.get()), 1);
}

TEST(TestPki, IssueWithAGivenKeyUsesThatKey) {
  TestPki pki = TestPki::Create(kNow);
  common::crypto::EvpPkeyPtr small = pki.NewRsaKey(1024);
  TestCert leaf = pki.Issue(pki.ScomLeafSpec("a.example.com"), small.get());
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(leaf.cert.get())), 1024);
  EXPECT_EQ(EVP_PKEY_eq(leaf.key.get(), small.get()), 1);
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock clock(kNow);
  EXPECT_EQ(clock.Now(), kNow);
  clock.SleepFor(absl::Hours(1));
  EXPECT_EQ(clock.Now(), kNow + absl::Hours(1));
  clock.Set(kNow);
  EXPECT_EQ(clock.Now(), kNow);
}

}  // namespace
}  // namespace certfleet::testing
