#include "common/crypto/parse.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "common/crypto/keys.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::crypto {
namespace {

using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr char kPassword[] = "s3cret-Pa55";

class ParseTest : public ::testing::Test {
 protected:
  ParseTest()
      : pki_(TestPki::Create(kNow)), leaf_(pki_.Issue(pki_.ScomLeafSpec("host1.example.com"))) {}

  std::string Pfx(Pkcs12Cipher cipher, absl::string_view password = kPassword) {
    auto pfx = BuildPkcs12(leaf_.key.get(), leaf_.cert.get(),
                           {pki_.issuing().cert.get(), pki_.root().cert.get()}, password, cipher);
    EXPECT_TRUE(pfx.ok()) << pfx.status();
    return pfx.ok() ? *pfx : "";
  }

  // The PBE algorithms protecting the certificate bag and the key bag of `pfx`.
  static std::pair<int, int> Pkcs12Algorithms(const std::string& pfx) {
    const auto* p = reinterpret_cast<const unsigned char*>(pfx.data());
    Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(pfx.size())));
    int cert_nid = NID_undef;
    int key_nid = NID_undef;
    STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12.get());
    for (int i = 0; i < sk_PKCS7_num(safes); ++i) {
      PKCS7* p7 = sk_PKCS7_value(safes, i);
      if (OBJ_obj2nid(p7->type) == NID_pkcs7_encrypted) {
        cert_nid = OBJ_obj2nid(p7->d.encrypted->enc_data->algorithm->algorithm);
      } else if (OBJ_obj2nid(p7->type) == NID_pkcs7_data) {
        STACK_OF(PKCS12_SAFEBAG)* bags = PKCS12_unpack_p7data(p7);
        for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); ++j) {
          const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, j);
          if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag) {
            const X509_ALGOR* alg = nullptr;
            X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, nullptr);
            key_nid = OBJ_obj2nid(alg->algorithm);
          }
        }
        sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
      }
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    return {cert_nid, key_nid};
  }

  void ExpectLeafWithChain(const ParsedFile& parsed) {
    ASSERT_EQ(parsed.certificates.size(), 3u);
    ASSERT_EQ(parsed.private_keys.size(), 1u);
    EXPECT_EQ(CertificateToDer(parsed.certificates[0].get()), leaf_.der);
    EXPECT_TRUE(KeyMatchesCertificate(parsed.private_keys[0].get(), parsed.certificates[0].get()));
    std::vector<std::string> rest = {CertificateToDer(parsed.certificates[1].get()),
                                     CertificateToDer(parsed.certificates[2].get())};
    EXPECT_TRUE(std::find(rest.begin(), rest.end(), pki_.issuing().der) != rest.end());
    EXPECT_TRUE(std::find(rest.begin(), rest.end(), pki_.root().der) != rest.end());
  }

  TestPki pki_;
  TestCert leaf_;
};

TEST_F(ParseTest, PemWithSeveralBlocksYieldsEveryCertificateInOrderAndTheKey) {
  std::string pem = "some text before\n" + leaf_.cert_pem + leaf_.key_pem + pki_.ChainPem();
  auto parsed = ParseCertificateFile(pem, std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->format, ParsedFile::Format::kPem);
  ASSERT_EQ(parsed->certificates.size(), 3u);
  EXPECT_EQ(CertificateToDer(parsed->certificates[0].get()), leaf_.der);
  EXPECT_EQ(CertificateToDer(parsed->certificates[1].get()), pki_.issuing().der);
  EXPECT_EQ(CertificateToDer(parsed->certificates[2].get()), pki_.root().der);
  ASSERT_EQ(parsed->private_keys.size(), 1u);
  EXPECT_EQ(EVP_PKEY_eq(parsed->private_keys[0].get(), leaf_.key.get()), 1);
}

TEST_F(ParseTest, PemKeyAloneIsAcceptedWithoutCertificates) {
  auto parsed = ParseCertificateFile(leaf_.key_pem, std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->certificates.empty());
  EXPECT_EQ(parsed->private_keys.size(), 1u);
}

TEST_F(ParseTest, EncryptedPemKeyNeedsItsPassword) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), leaf_.key.get(), EVP_aes_256_cbc(), nullptr, 0,
                                          nullptr, const_cast<char*>(kPassword)),
            1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem = leaf_.cert_pem + std::string(data, static_cast<size_t>(len));

  EXPECT_EQ(ParseCertificateFile(pem, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto wrong = ParseCertificateFile(pem, std::string("wrong-password"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message().find("wrong-password"), std::string::npos);
  auto parsed = ParseCertificateFile(pem, std::string(kPassword));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->private_keys.size(), 1u);
  EXPECT_EQ(EVP_PKEY_eq(parsed->private_keys[0].get(), leaf_.key.get()), 1);
}

TEST_F(ParseTest, DerCertificateIsRead) {
  auto parsed = ParseCertificateFile(leaf_.der, std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->format, ParsedFile::Format::kDer);
  ASSERT_EQ(parsed->certificates.size(), 1u);
  EXPECT_EQ(CertificateToDer(parsed->certificates[0].get()), leaf_.der);
  EXPECT_TRUE(parsed->private_keys.empty());
}

TEST_F(ParseTest, LegacyRc2PfxRoundTripsAndUsesRc2ForCertificatesAnd3DesForTheKey) {
  std::string pfx = Pfx(Pkcs12Cipher::kLegacyRc2);
  auto [cert_nid, key_nid] = Pkcs12Algorithms(pfx);
  EXPECT_EQ(cert_nid, NID_pbe_WithSHA1And40BitRC2_CBC);
  EXPECT_EQ(key_nid, NID_pbe_WithSHA1And3_Key_TripleDES_CBC);
  auto parsed = ParseCertificateFile(pfx, std::string(kPassword));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->format, ParsedFile::Format::kPkcs12);
  ExpectLeafWithChain(*parsed);
}

TEST_F(ParseTest, TripleDesPfxRoundTrips) {
  std::string pfx = Pfx(Pkcs12Cipher::kTripleDes);
  auto [cert_nid, key_nid] = Pkcs12Algorithms(pfx);
  EXPECT_EQ(cert_nid, NID_pbe_WithSHA1And3_Key_TripleDES_CBC);
  EXPECT_EQ(key_nid, NID_pbe_WithSHA1And3_Key_TripleDES_CBC);
  auto parsed = ParseCertificateFile(pfx, std::string(kPassword));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectLeafWithChain(*parsed);
}

TEST_F(ParseTest, Aes256PfxRoundTripsWithASha256Mac) {
  std::string pfx = Pfx(Pkcs12Cipher::kAes256);
  auto [cert_nid, key_nid] = Pkcs12Algorithms(pfx);
  EXPECT_EQ(cert_nid, NID_pbes2);
  EXPECT_EQ(key_nid, NID_pbes2);
  const auto* p = reinterpret_cast<const unsigned char*>(pfx.data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(pfx.size())));
  const X509_ALGOR* mac_alg = nullptr;
  PKCS12_get0_mac(nullptr, &mac_alg, nullptr, nullptr, p12.get());
  ASSERT_NE(mac_alg, nullptr);
  EXPECT_EQ(OBJ_obj2nid(mac_alg->algorithm), NID_sha256);
  auto parsed = ParseCertificateFile(pfx, std::string(kPassword));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectLeafWithChain(*parsed);
}

TEST_F(ParseTest, PfxWithAnEmptyPasswordOpensWithoutAPassword) {
  std::string pfx = Pfx(Pkcs12Cipher::kTripleDes, "");
  auto parsed = ParseCertificateFile(pfx, std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectLeafWithChain(*parsed);
}

TEST_F(ParseTest, WrongPfxPasswordIsInvalidArgumentAndTheMessageOmitsThePassword) {
  for (Pkcs12Cipher cipher :
       {Pkcs12Cipher::kLegacyRc2, Pkcs12Cipher::kTripleDes, Pkcs12Cipher::kAes256}) {
    std::string pfx = Pfx(cipher);
    auto parsed = ParseCertificateFile(pfx, std::string("Hunter2-guess"));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("wrong password"), std::string::npos)
        << parsed.status();
    EXPECT_EQ(parsed.status().message().find("Hunter2-guess"), std::string::npos);
    EXPECT_EQ(parsed.status().message().find(kPassword), std::string::npos);
  }
}

TEST_F(ParseTest, PfxWithoutAGivenPasswordIsFailedPrecondition) {
  EXPECT_EQ(ParseCertificateFile(Pfx(Pkcs12Cipher::kTripleDes), std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ParseTest, GarbageIsNotACertificateFile) {
  auto parsed = ParseCertificateFile("this is not a certificate\x01\x02\xff", std::nullopt);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("not a PEM, DER or PKCS#12 certificate file"),
            std::string::npos)
      << parsed.status();
  EXPECT_EQ(ParseCertificateFile("", std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ParseTest, TruncatedDerAndPfxAreInvalidArgument) {
  auto der = ParseCertificateFile(leaf_.der.substr(0, leaf_.der.size() / 2), std::nullopt);
  EXPECT_EQ(der.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(der.status().message().find("not a PEM, DER or PKCS#12"), std::string::npos);
  std::string pfx = Pfx(Pkcs12Cipher::kAes256);
  auto p12 = ParseCertificateFile(pfx.substr(0, pfx.size() - 40), std::string(kPassword));
  EXPECT_EQ(p12.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ParseTest, TruncatedPemIsInvalidArgument) {
  std::string pem = leaf_.cert_pem.substr(0, leaf_.cert_pem.size() / 2);
  EXPECT_EQ(ParseCertificateFile(pem, std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string only_other = "-----BEGIN PUBLIC STUFF-----\nAAAA\n-----END PUBLIC STUFF-----\n";
  EXPECT_EQ(ParseCertificateFile(only_other, std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ParseTest, ReadCertificateFileNamesThePathAndReturnsNotFoundForAMissingFile) {
  auto missing = ReadCertificateFile("/nonexistent/dir/cert.pem", std::nullopt);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/dir/cert.pem"), std::string::npos);

  std::string path = ::testing::TempDir() + "/parse_test_garbage.bin";
  std::ofstream(path, std::ios::binary) << "garbage";
  auto garbage = ReadCertificateFile(path, std::nullopt);
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find(path), std::string::npos);
  std::remove(path.c_str());
}

TEST_F(ParseTest, ReadCertificateFileReadsAPfx) {
  std::string path = ::testing::TempDir() + "/parse_test_leaf.pfx";
  std::ofstream(path, std::ios::binary) << Pfx(Pkcs12Cipher::kLegacyRc2);
  auto parsed = ReadCertificateFile(path, std::string(kPassword));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectLeafWithChain(*parsed);
  std::remove(path.c_str());
}

TEST_F(ParseTest, CertificatePemAndDerHelpersRoundTrip) {
  auto one = CertificateFromPem(pki_.ChainPem());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(CertificateToDer(one->get()), pki_.issuing().der);
  auto all = CertificatesFromPem(pki_.ChainPem());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2u);
  auto der = CertificateFromDer(leaf_.der);
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(CertificateToPem(der->get()), leaf_.cert_pem);
  EXPECT_EQ(CertificateFromPem(leaf_.key_pem).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CertificateFromDer("xx").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ParseTest, BuildPkcs12RejectsAKeyThatDoesNotMatchTheCertificate) {
  auto pfx =
      BuildPkcs12(pki_.root().key.get(), leaf_.cert.get(), {}, kPassword, Pkcs12Cipher::kAes256);
  EXPECT_EQ(pfx.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EnsureLegacyProvider, SucceedsAndIsIdempotent) {
  EXPECT_TRUE(EnsureLegacyProvider().ok());
  EXPECT_TRUE(EnsureLegacyProvider().ok());
}

}  // namespace
}  // namespace certfleet::common::crypto
