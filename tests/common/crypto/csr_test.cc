#include "common/crypto/csr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

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
  EvpPkeyPtr pub = CsrPublicKey(back->get());
  EXPECT_EQ(EVP_PKEY_eq(pub.get(), key.get()), 1);
}

TEST(Csr, EcKeysAreSupported) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  auto csr = BuildCsr(key.get(), CsrOptions{.subject_cn = "agent", .dns_names = {}, .uris = {}});
  ASSERT_TRUE(csr.ok()) << csr.status();
  auto info = InspectCsr(csr->get());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->key_algorithm, "EC");
  EXPECT_TRUE(info->dns_names.empty());
}

TEST(Csr, TamperedRequestFailsInspectionWithInvalidArgument) {
  EvpPkeyPtr key = TestPki::NewEcKey();
  auto csr = BuildCsr(key.get(), CsrOptions{.subject_cn = "agent", .dns_names = {}, .uris = {}});
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

TEST(Csr, CsrFromPemRejectsTextWithoutARequest) {
  EXPECT_EQ(CsrFromPem("garbage").status().code(), absl::StatusCode::kInvalidArgument);
  auto pki = TestPki::Create(kNow);
  EXPECT_EQ(CsrFromPem(pki.root().cert_pem).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace certfleet::common::crypto
