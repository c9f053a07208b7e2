#include "controller/ca/controller_pki.h"

#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/model/certificate.h"
#include "common/model/identity.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::LoadSeededControllerPki;
using ::certfleet::testing::SeedControllerCa;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestPki;
using common::crypto::X509Ptr;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

int Mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::string ReadOrDie(const std::string& path) {
  auto data = common::ReadFileToString(path);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

std::vector<X509Ptr> Certs(absl::string_view pem) {
  auto certs = common::crypto::CertificatesFromPem(pem);
  EXPECT_TRUE(certs.ok()) << certs.status();
  return certs.ok() ? std::move(*certs) : std::vector<X509Ptr>();
}

ControllerPkiOptions Options(const std::string& state_dir) {
  ControllerPkiOptions options;
  options.state_dir = state_dir;
  return options;
}

common::model::CertificateInfo Describe(X509* cert) {
  auto info = common::crypto::DescribeCertificate(cert, false);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : common::model::CertificateInfo();
}

std::string CsrPem(EVP_PKEY* key, const std::string& cn) {
  common::crypto::CsrOptions options;
  options.subject_cn = cn;
  auto csr = common::crypto::BuildCsr(key, options);
  EXPECT_TRUE(csr.ok()) << csr.status();
  return csr.ok() ? common::crypto::CsrToPem(csr->get()) : std::string();
}

// OK when the first certificate of `chain_pem` chains to `root_pem` through the others.
absl::Status VerifyPemChain(const std::string& chain_pem, const std::string& root_pem,
                            absl::Time at) {
  std::vector<X509Ptr> chain = Certs(chain_pem);
  std::vector<X509Ptr> roots = Certs(root_pem);
  if (chain.empty() || roots.empty()) return absl::InvalidArgumentError("no certificates");
  std::vector<X509*> intermediates;
  for (size_t i = 1; i < chain.size(); ++i) intermediates.push_back(chain[i].get());
  return common::crypto::VerifyChain(chain[0].get(), intermediates, {roots[0].get()}, at);
}

// --- The first start on an empty directory: the only tests that pay for the RSA-3072 keys. ---

class ControllerPkiFirstStartTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    clock_ = new FakeClock(kNow);
    auto pki = ControllerPki::LoadOrCreate(Options(dir_->path()), *clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = pki->release();
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete clock_;
    delete dir_;
  }
  void SetUp() override { ASSERT_NE(pki_, nullptr); }

  static std::string Path(absl::string_view relative) {
    return absl::StrCat(dir_->path(), "/", relative);
  }

  static TempDir* dir_;
  static FakeClock* clock_;
  static ControllerPki* pki_;
};

TempDir* ControllerPkiFirstStartTest::dir_ = nullptr;
FakeClock* ControllerPkiFirstStartTest::clock_ = nullptr;
ControllerPki* ControllerPkiFirstStartTest::pki_ = nullptr;

TEST_F(ControllerPkiFirstStartTest, CreatesEveryFileWithKeys0600AndDirectories0700) {
  for (const char* dir : {"ca", "tls", "admin"}) {
    EXPECT_EQ(Mode(Path(dir)), 0700) << dir;
  }
  for (const char* key : {"ca/root.key", "ca/issuing.key", "tls/server.key", "admin/client.key"}) {
    EXPECT_EQ(Mode(Path(key)), 0600) << key;
  }
  for (const char* cert :
       {"ca/root.pem", "ca/issuing.pem", "tls/server.pem", "admin/ca.pem", "admin/client.pem"}) {
    EXPECT_TRUE(common::FileExists(Path(cert))) << cert;
  }
}

TEST_F(ControllerPkiFirstStartTest, CreatesARootCaWithRsa3072KeysAndAnIssuingCaUnderIt) {
  std::vector<X509Ptr> root = Certs(ReadOrDie(Path("ca/root.pem")));
  std::vector<X509Ptr> issuing = Certs(ReadOrDie(Path("ca/issuing.pem")));
  ASSERT_EQ(root.size(), 1u);
  ASSERT_EQ(issuing.size(), 1u);
  common::model::CertificateInfo root_info = Describe(root[0].get());
  common::model::CertificateInfo issuing_info = Describe(issuing[0].get());
  EXPECT_TRUE(root_info.is_ca);
  EXPECT_TRUE(issuing_info.is_ca);
  EXPECT_EQ(root_info.key_algorithm, "RSA");
  EXPECT_EQ(root_info.key_bits, 3072);
  EXPECT_EQ(issuing_info.key_bits, 3072);
  EXPECT_EQ(X509_check_issued(root[0].get(), issuing[0].get()), X509_V_OK);
  EXPECT_EQ(pki_->RootPem(), common::crypto::CertificateToPem(root[0].get()));
  auto root_key = common::crypto::PrivateKeyFromPem(ReadOrDie(Path("ca/root.key")));
  ASSERT_TRUE(root_key.ok()) << root_key.status();
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(root_key->get(), root[0].get()));
}

TEST_F(ControllerPkiFirstStartTest, WritesAdminCredentialsThatChainToTheRoot) {
  const std::string client_pem = ReadOrDie(Path("admin/client.pem"));
  EXPECT_EQ(ReadOrDie(Path("admin/ca.pem")), pki_->RootPem());
  EXPECT_TRUE(VerifyPemChain(client_pem, pki_->RootPem(), clock_->Now()).ok());
  std::vector<X509Ptr> chain = Certs(client_pem);
  ASSERT_FALSE(chain.empty());
  EXPECT_THAT(Describe(chain[0].get()).uris, ElementsAre(common::model::OperatorIdentityUri(
                                                 common::model::Role::kAdmin, "admin")));
  auto key = common::crypto::PrivateKeyFromPem(ReadOrDie(Path("admin/client.key")));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(key->get(), chain[0].get()));
}

TEST_F(ControllerPkiFirstStartTest, ASecondStartReusesTheSameRootAndServerCertificate) {
  const std::string root_key = ReadOrDie(Path("ca/root.key"));
  const std::string admin_client = ReadOrDie(Path("admin/client.pem"));
  auto again = ControllerPki::LoadOrCreate(Options(dir_->path()), *clock_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->RootPin(), pki_->RootPin());
  EXPECT_EQ((*again)->RootPem(), pki_->RootPem());
  EXPECT_EQ((*again)->ServerChainPem(), pki_->ServerChainPem());
  EXPECT_EQ((*again)->ServerKeyPem(), pki_->ServerKeyPem());
  EXPECT_EQ(ReadOrDie(Path("ca/root.key")), root_key);
  EXPECT_EQ(ReadOrDie(Path("admin/client.pem")), admin_client);
}

// --- Everything else runs on a CA handed in, as an operator may (fast: pooled keys). ---

class ControllerPkiTest : public ::testing::Test {
 protected:
  ControllerPkiTest() : ca_(TestPki::Create(kNow)), clock_(kNow) {}

  std::string Path(absl::string_view relative) const {
    return absl::StrCat(dir_.path(), "/", relative);
  }
  absl::StatusOr<std::unique_ptr<ControllerPki>> Load(std::vector<std::string> names = {}) {
    ControllerPkiOptions options;
    options.state_dir = dir_.path();
    options.server_names = std::move(names);
    return ControllerPki::LoadOrCreate(options, clock_);
  }

  TestPki ca_;
  FakeClock clock_;
  TempDir dir_;
};

TEST_F(ControllerPkiTest, TakesAnExistingCaAndPinsItsRoot) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  EXPECT_EQ((*pki)->RootPem(), ca_.root().cert_pem);
  EXPECT_EQ((*pki)->RootPin(), common::crypto::Sha256Hex(ca_.root().der));
  EXPECT_EQ((*pki)->RootPin().size(), 64u);
  EXPECT_EQ((*pki)->RootPin(), absl::AsciiStrToUpper((*pki)->RootPin()));
}

TEST_F(ControllerPkiTest, ServerChainIsLeafIssuingRootAndTheLeafServesLoopback) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  std::vector<X509Ptr> chain = Certs((*pki)->ServerChainPem());
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(common::crypto::CertificateToDer(chain[1].get()), ca_.issuing().der);
  EXPECT_EQ(common::crypto::CertificateToDer(chain[2].get()), ca_.root().der);
  EXPECT_TRUE(VerifyPemChain((*pki)->ServerChainPem(), ca_.root().cert_pem, kNow).ok());
  X509* leaf = chain[0].get();
  EXPECT_EQ(X509_check_host(leaf, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  EXPECT_THAT(Describe(leaf).extended_key_usage,
              Contains(std::string(common::model::kServerAuthOid)));
  auto key = common::crypto::PrivateKeyFromPem((*pki)->ServerKeyPem());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(key->get(), leaf));
  EXPECT_EQ(Mode(Path("tls/server.key")), 0600);
}

TEST_F(ControllerPkiTest, ANewServerNameTriggersAReissuedServerCertificateContainingIt) {
  auto first = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Load({"ctl.example.com", "10.20.30.40"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*second)->ServerChainPem(), (*first)->ServerChainPem());
  EXPECT_NE((*second)->ServerKeyPem(), (*first)->ServerKeyPem());
  EXPECT_EQ((*second)->RootPin(), (*first)->RootPin());
  std::vector<X509Ptr> chain = Certs((*second)->ServerChainPem());
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(X509_check_host(chain[0].get(), "ctl.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(chain[0].get(), "10.20.30.40", 0), 1);
  EXPECT_EQ(X509_check_host(chain[0].get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(ReadOrDie(Path("tls/server.pem")) + ca_.issuing().cert_pem + ca_.root().cert_pem,
            (*second)->ServerChainPem());

  // The same names again: nothing to re-issue.
  auto third = Load({"ctl.example.com", "10.20.30.40"});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ((*third)->ServerChainPem(), (*second)->ServerChainPem());
  EXPECT_EQ((*third)->ServerKeyPem(), (*second)->ServerKeyPem());
}

TEST_F(ControllerPkiTest, ANewIpAddressAloneTriggersAReissue) {
  auto first = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Load({"192.0.2.7"});
  ASSERT_TRUE(second.ok()) << second.status();
  std::vector<X509Ptr> chain = Certs((*second)->ServerChainPem());
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(X509_check_ip_asc(chain[0].get(), "192.0.2.7", 0), 1);
}

TEST_F(ControllerPkiTest, AServerCertificateEndingWithin30DaysIsReissued) {
  auto first = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<X509Ptr> before = Certs((*first)->ServerChainPem());
  ASSERT_FALSE(before.empty());
  const absl::Time old_end = Describe(before[0].get()).not_after;

  clock_.Set(old_end - absl::Hours(24 * 29));
  auto second = Load();
  ASSERT_TRUE(second.ok()) << second.status();
  std::vector<X509Ptr> after = Certs((*second)->ServerChainPem());
  ASSERT_FALSE(after.empty());
  EXPECT_GT(Describe(after[0].get()).not_after, old_end);
}

TEST_F(ControllerPkiTest, AServerCertificateWithMoreThan30DaysLeftIsKept) {
  auto first = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<X509Ptr> before = Certs((*first)->ServerChainPem());
  ASSERT_FALSE(before.empty());
  clock_.Set(Describe(before[0].get()).not_after - absl::Hours(24 * 31));
  auto second = Load();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->ServerChainPem(), (*first)->ServerChainPem());
}

TEST_F(ControllerPkiTest, ACorruptRootPemIsDataLossNamingTheFile) {
  ASSERT_TRUE(SeedControllerCa(dir_.path(), ca_).ok());
  ASSERT_TRUE(common::WriteFileAtomically(Path("ca/root.pem"), "not a certificate\n", 0644).ok());
  auto pki = Load();
  EXPECT_EQ(pki.status().code(), absl::StatusCode::kDataLoss) << pki.status();
  EXPECT_THAT(pki.status().message(), HasSubstr(Path("ca/root.pem")));
}

TEST_F(ControllerPkiTest, ARootKeyThatDoesNotMatchTheRootIsDataLoss) {
  ASSERT_TRUE(SeedControllerCa(dir_.path(), ca_).ok());
  ASSERT_TRUE(common::WriteFileAtomically(Path("ca/root.key"), ca_.issuing().key_pem, 0600).ok());
  auto pki = Load();
  EXPECT_EQ(pki.status().code(), absl::StatusCode::kDataLoss) << pki.status();
  EXPECT_THAT(pki.status().message(), HasSubstr(Path("ca/root.key")));
}

TEST_F(ControllerPkiTest, AnIssuingKeyThatIsNotAKeyIsDataLoss) {
  ASSERT_TRUE(SeedControllerCa(dir_.path(), ca_).ok());
  ASSERT_TRUE(common::WriteFileAtomically(Path("ca/issuing.key"), ca_.root().cert_pem, 0600).ok());
  auto pki = Load();
  EXPECT_EQ(pki.status().code(), absl::StatusCode::kDataLoss) << pki.status();
  EXPECT_THAT(pki.status().message(), HasSubstr(Path("ca/issuing.key")));
}

TEST_F(ControllerPkiTest, AnIssuingCaOfAnotherRootIsDataLoss) {
  ASSERT_TRUE(SeedControllerCa(dir_.path(), ca_).ok());
  TestPki other = TestPki::Create(kNow, "Other CA");
  ASSERT_TRUE(
      common::WriteFileAtomically(Path("ca/issuing.pem"), other.issuing().cert_pem, 0644).ok());
  ASSERT_TRUE(
      common::WriteFileAtomically(Path("ca/issuing.key"), other.issuing().key_pem, 0600).ok());
  auto pki = Load();
  EXPECT_EQ(pki.status().code(), absl::StatusCode::kDataLoss) << pki.status();
  EXPECT_THAT(pki.status().message(), HasSubstr(Path("ca/issuing.pem")));
}

TEST_F(ControllerPkiTest, ACorruptServerKeyIsDataLossNamingTheFile) {
  ASSERT_TRUE(LoadSeededControllerPki(dir_.path(), ca_, clock_).ok());
  ASSERT_TRUE(common::WriteFileAtomically(Path("tls/server.key"), "garbage", 0600).ok());
  auto pki = Load();
  EXPECT_EQ(pki.status().code(), absl::StatusCode::kDataLoss) << pki.status();
  EXPECT_THAT(pki.status().message(), HasSubstr(Path("tls/server.key")));
}

TEST_F(ControllerPkiTest, IssueAgentIdentityPutsTheAgentUriInACertificateThatChainsToTheRoot) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  common::crypto::EvpPkeyPtr key = TestPki::NewEcKey();
  auto issued =
      (*pki)->IssueAgentIdentity(CsrPem(key.get(), "ignored"), "0a1b2c3d", "host1.example.com");
  ASSERT_TRUE(issued.ok()) << issued.status();

  std::vector<X509Ptr> chain = Certs(issued->chain_pem);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(common::crypto::CertificateToDer(chain[1].get()), ca_.issuing().der);
  EXPECT_TRUE(
      common::crypto::VerifyChain(chain[0].get(), {chain[1].get()}, {ca_.root().cert.get()}, kNow)
          .ok());
  common::model::CertificateInfo info = Describe(chain[0].get());
  EXPECT_THAT(info.uris, ElementsAre("certfleet://agent/0a1b2c3d"));
  EXPECT_EQ(info.subject_cn, "host1.example.com");
  EXPECT_THAT(info.extended_key_usage, ElementsAre(std::string(common::model::kClientAuthOid)));
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.serial, issued->serial);
  EXPECT_EQ(info.not_after, kNow + ControllerPkiOptions().agent_identity_lifetime);
  EXPECT_EQ(issued->not_after, info.not_after);
  EXPECT_TRUE(issued->key_pem.empty());
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(key.get(), chain[0].get()));
}

TEST_F(ControllerPkiTest, IssueAgentIdentityBackdatesByFiveMinutesOrATenthOfAShortLifetime) {
  ASSERT_TRUE(SeedControllerCa(dir_.path(), ca_).ok());
  ControllerPkiOptions options;
  options.state_dir = dir_.path();
  for (auto [lifetime, backdate] : {std::pair{absl::Seconds(20), absl::Seconds(2)},
                                    std::pair{absl::Hours(24 * 30), absl::Minutes(5)}}) {
    options.agent_identity_lifetime = lifetime;
    auto pki = ControllerPki::LoadOrCreate(options, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    common::crypto::EvpPkeyPtr key = TestPki::NewEcKey();
    auto issued = (*pki)->IssueAgentIdentity(CsrPem(key.get(), "h"), "a1", "h.example.com");
    ASSERT_TRUE(issued.ok()) << issued.status();
    common::model::CertificateInfo info = Describe(Certs(issued->chain_pem)[0].get());
    EXPECT_EQ(info.not_before, kNow - backdate) << lifetime;
    EXPECT_EQ(info.not_after, kNow + lifetime) << lifetime;
  }
}

TEST_F(ControllerPkiTest, IssueAgentIdentityAcceptsAnRsa2048Csr) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  common::crypto::EvpPkeyPtr key = ca_.NewRsaKey(2048);
  auto issued = (*pki)->IssueAgentIdentity(CsrPem(key.get(), "h"), "a1", "h.example.com");
  ASSERT_TRUE(issued.ok()) << issued.status();
}

TEST_F(ControllerPkiTest, IssueAgentIdentityRejectsAWeakRsa1024KeyWithInvalidArgument) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  common::crypto::EvpPkeyPtr weak = ca_.NewRsaKey(1024);
  auto issued = (*pki)->IssueAgentIdentity(CsrPem(weak.get(), "h"), "a1", "h.example.com");
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument) << issued.status();
}

TEST_F(ControllerPkiTest, IssueAgentIdentityRejectsGarbageWithInvalidArgument) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  for (const char* csr : {"", "garbage",
                          "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                          "-----END CERTIFICATE REQUEST-----\n"}) {
    EXPECT_EQ((*pki)->IssueAgentIdentity(csr, "a1", "h.example.com").status().code(),
              absl::StatusCode::kInvalidArgument)
        << csr;
  }
  // A certificate is not a request.
  EXPECT_EQ((*pki)->IssueAgentIdentity(ca_.root().cert_pem, "a1", "h.example.com").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ControllerPkiTest, IssueOperatorMakesAKeyAndARoleCertificateThatChainsToTheRoot) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  auto issued = (*pki)->IssueOperator(common::model::Role::kViewer, "bob@example.com");
  ASSERT_TRUE(issued.ok()) << issued.status();
  std::vector<X509Ptr> chain = Certs(issued->chain_pem);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_TRUE(VerifyPemChain(issued->chain_pem, ca_.root().cert_pem, kNow).ok());
  common::model::CertificateInfo info = Describe(chain[0].get());
  EXPECT_THAT(info.uris, ElementsAre("certfleet://operator/viewer/bob@example.com"));
  EXPECT_EQ(info.not_after, kNow + ControllerPkiOptions().operator_lifetime);
  auto key = common::crypto::PrivateKeyFromPem(issued->key_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(key->get(), chain[0].get()));
}

TEST_F(ControllerPkiTest, IssueOperatorRejectsNamesThatCannotBeAnIdentity) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  for (const std::string& name : {std::string("ops/admin"), std::string("a/b"), std::string(""),
                                  std::string("two words"), std::string(254, 'x')}) {
    EXPECT_EQ((*pki)->IssueOperator(common::model::Role::kOperator, name).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "'" << name << "'";
  }
}

TEST_F(ControllerPkiTest, WriteCredentialDirWritesThePrivateKey0600AndTheRoot) {
  auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
  ASSERT_TRUE(pki.ok()) << pki.status();
  auto issued = (*pki)->IssueOperator(common::model::Role::kOperator, "carol");
  ASSERT_TRUE(issued.ok()) << issued.status();
  const std::string out = Path("creds/carol");
  ASSERT_TRUE((*pki)->WriteCredentialDir(out, *issued).ok());
  EXPECT_EQ(Mode(out), 0700);
  EXPECT_EQ(Mode(out + "/client.key"), 0600);
  EXPECT_EQ(ReadOrDie(out + "/client.key"), issued->key_pem);
  EXPECT_EQ(ReadOrDie(out + "/client.pem"), issued->chain_pem);
  EXPECT_EQ(ReadOrDie(out + "/ca.pem"), ca_.root().cert_pem);
}

}  // namespace
}  // namespace certfleet::controller::ca
