#include "common/crypto/keys.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestPki;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

TEST(GenerateRsaKey, RejectsKeysSmallerThan2048BitsWithInvalidArgument) {
  EXPECT_EQ(GenerateRsaKey(1024).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateRsaKey(32768).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GenerateRsaKey, MakesAKeyOfTheRequestedSize) {
  auto key = GenerateRsaKey(2048);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(EVP_PKEY_get_bits(key->get()), 2048);
  EXPECT_EQ(EVP_PKEY_get_base_id(key->get()), EVP_PKEY_RSA);
}

TEST(GenerateEcKey, MakesAP256Key) {
  auto key = GenerateEcKey();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(EVP_PKEY_get_base_id(key->get()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key->get()), 256);
}

TEST(PrivateKeyPem, RoundTripsAnRsaAndAnEcKey) {
  auto pki = TestPki::Create(kNow);
  std::vector<EvpPkeyPtr> keys;
  keys.push_back(pki.NewRsaKey());
  keys.push_back(TestPki::NewEcKey());
  for (const EvpPkeyPtr& key : keys) {
    std::string pem = PrivateKeyToPem(key.get());
    EXPECT_NE(pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
    auto back = PrivateKeyFromPem(pem);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(EVP_PKEY_eq(back->get(), key.get()), 1);
  }
}

TEST(PrivateKeyFromPem, SkipsCertificatesBeforeTheKey) {
  auto pki = TestPki::Create(kNow);
  auto key = PrivateKeyFromPem(pki.root().cert_pem + pki.root().key_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(EVP_PKEY_eq(key->get(), pki.root().key.get()), 1);
}

TEST(PrivateKeyFromPem, ReturnsInvalidArgumentWithoutAKey) {
  auto pki = TestPki::Create(kNow);
  EXPECT_EQ(PrivateKeyFromPem(pki.root().cert_pem).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrivateKeyFromPem("hello").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyMatchesCertificate, IsTrueOnlyForTheCertificatesOwnKey) {
  auto pki = TestPki::Create(kNow);
  EXPECT_TRUE(KeyMatchesCertificate(pki.root().key.get(), pki.root().cert.get()));
  EXPECT_FALSE(KeyMatchesCertificate(pki.issuing().key.get(), pki.root().cert.get()));
  EXPECT_FALSE(KeyMatchesCertificate(nullptr, pki.root().cert.get()));
}

TEST(PublicKeyDer, IsTheSameForTheKeyAndItsCertificate) {
  auto pki = TestPki::Create(kNow);
  std::string from_key = PublicKeyDer(pki.root().key.get());
  EXPECT_FALSE(from_key.empty());
  EXPECT_EQ(from_key, PublicKeyDer(X509_get0_pubkey(pki.root().cert.get())));
}

}  // namespace
}  // namespace certfleet::common::crypto
