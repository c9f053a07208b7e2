// The configurations shipped in deploy/issuers/, run for real: a throwaway CA made at test time
// with openssl (openssl-ca) or easy-rsa (easy-rsa), the helper script driven by CommandIssuer
// with a real CSR.

#include <openssl/x509v3.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/model/certificate.h"
#include "common/model/profile.h"
#include "common/scom/rules.h"
#include "controller/ca/command/command_issuer.h"
#include "controller/ca/command/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/controller/renewal/test_csr.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::ScomCsrPem;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestPki;
using common::crypto::X509Ptr;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Kind = IssuanceResult::Kind;

constexpr absl::string_view kFqdn = "scom1.corp.example.com";
constexpr char kOpenssl[] = "/usr/bin/openssl";
constexpr char kEasyRsa[] = "/usr/share/easy-rsa/easyrsa";
const std::string kIssuers = std::string(CERTFLEET_SOURCE_DIR) + "/deploy/issuers";

class ShippedIssuersTest : public ::testing::Test {
 protected:
  ShippedIssuersTest() : clock_(absl::Now()), key_(TestPki::Create(absl::Now()).NewRsaKey(2048)) {
    request_.renewal_id = "ren-shipped-1";
    request_.agent_id = "agent-1";
    request_.fqdn = std::string(kFqdn);
    request_.csr_pem = ScomCsrPem(key_.get(), kFqdn);
    request_.profile = common::model::ScomProfile();
    request_.profile.validity = absl::Hours(24 * 30);
  }

  // Runs a setup command; fails the test unless it exits 0.
  void Run(const std::vector<std::string>& argv, std::vector<std::string> env = {}) {
    SubprocessSpec spec;
    spec.argv = argv;
    env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
    spec.env = env;
    auto run = RunSubprocess(spec);
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_EQ(run->end, SubprocessResult::End::kExited);
    ASSERT_EQ(run->exit_code, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": "
                                 << run->out << run->err;
  }

  void Write(const std::string& path, absl::string_view data) {
    ASSERT_TRUE(common::WriteFileAtomically(path, data, 0600).ok()) << path;
  }

  // The CA directory as the script's argument, or (`in_environment`) as CA_DIR.
  std::unique_ptr<CommandIssuer> Issuer(const std::string& name, const std::string& script,
                                        const std::string& ca_dir, bool in_environment = false) {
    CommandIssuerOptions options;
    options.name = name;
    options.argv = {script};
    if (in_environment) {
      options.environment["CA_DIR"] = ca_dir;
    } else {
      options.argv.push_back(ca_dir);
    }
    auto issuer = CommandIssuer::Create(std::move(options), {.clock = clock_});
    EXPECT_TRUE(issuer.ok()) << issuer.status();
    return issuer.ok() ? std::move(*issuer) : nullptr;
  }

  // What SCOM needs of the answer: leaf first for the CSR's key, CN and first SAN = FQDN,
  // critical KeyUsage digitalSignature + keyEncipherment, EKU server + client, the profile's
  // validity, a chain to the CA that verifies (here and with `openssl verify`), no SCOM problem.
  void ExpectScomChain(const IssuanceResult& result) {
    ASSERT_EQ(result.kind, Kind::kIssued) << result.reason;
    auto chain = common::crypto::CertificatesFromPem(result.chain_pem);
    ASSERT_TRUE(chain.ok()) << chain.status();
    ASSERT_EQ(chain->size(), 2u);
    X509* leaf = chain->front().get();
    X509* ca = chain->back().get();
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), key_.get()), 1);

    auto info = common::crypto::DescribeCertificate(leaf, false);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->subject_cn, kFqdn);
    EXPECT_THAT(info->dns_names, ElementsAre(std::string(kFqdn)));
    EXPECT_TRUE(info->has_key_usage);
    EXPECT_EQ(info->key_usage, common::model::kDigitalSignature | common::model::kKeyEncipherment);
    int ku = X509_get_ext_by_NID(leaf, NID_key_usage, -1);
    ASSERT_GE(ku, 0);
    EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(leaf, ku)), 1);
    EXPECT_THAT(info->extended_key_usage, ElementsAre(std::string(common::model::kServerAuthOid),
                                                      std::string(common::model::kClientAuthOid)));
    EXPECT_FALSE(info->is_ca);
    EXPECT_EQ(info->signature_hash, "SHA256");
    EXPECT_NEAR(absl::ToDoubleHours(info->not_after - info->not_before), 24 * 30, 1.0);

    const absl::Time now = absl::Now();
    EXPECT_TRUE(common::crypto::VerifyChain(leaf, {}, {ca}, now).ok());
    common::scom::EvaluationOptions rules;
    rules.now = now;
    rules.fqdn = std::string(kFqdn);
    rules.chain_trusted = true;
    rules.require_private_key = false;
    rules.warn_within = absl::Hours(24);  // the profile asks for 30 days only
    EXPECT_THAT(common::scom::ProblemNames(common::scom::Evaluate(*info, rules)), IsEmpty());

    const std::string leaf_path = dir_.path() + "/leaf.pem";
    const std::string ca_path = dir_.path() + "/ca-answer.pem";
    Write(leaf_path, common::crypto::CertificateToPem(leaf));
    Write(ca_path, common::crypto::CertificateToPem(ca));
    Run({kOpenssl, "verify", "-x509_strict", "-purpose", "sslserver", "-verify_hostname",
         std::string(kFqdn), "-CAfile", ca_path, leaf_path});
    Run({kOpenssl, "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", ca_path,
         leaf_path});
  }

  TempDir dir_;
  FakeClock clock_;
  common::crypto::EvpPkeyPtr key_;
  IssuanceRequest request_;
};

TEST_F(ShippedIssuersTest, OpensslCaIssuesAScomCertificate) {
  if (::access(kOpenssl, X_OK) != 0) GTEST_SKIP() << "openssl is not installed";
  // The CA directory as docs/issuers.md tells an operator to make it.
  const std::string ca = dir_.path() + "/openssl-ca";
  ASSERT_TRUE(common::MakeDirectories(ca + "/private", 0700).ok());
  ASSERT_TRUE(common::MakeDirectories(ca + "/newcerts", 0700).ok());
  Write(ca + "/index.txt", "");
  Write(ca + "/index.txt.attr", "unique_subject = no\n");
  Run({kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", ca + "/private/ca.key",
       "-out", ca + "/ca.pem", "-subj", "/CN=certfleet test openssl CA", "-days", "30", "-addext",
       "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});

  auto issuer = Issuer("openssl-ca", kIssuers + "/openssl-ca/openssl-ca-issue.sh", ca,
                       /*in_environment=*/true);
  auto first = issuer->Submit(request_);
  ASSERT_TRUE(first.ok()) << first.status();
  ExpectScomChain(*first);

  // Submitting the renewal again answers with the same certificate, not a second one.
  auto again = issuer->Submit(request_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->chain_pem, first->chain_pem);
  auto index = common::ReadFileToString(ca + "/index.txt");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(std::count(index->begin(), index->end(), '\n'), 1) << *index;
}

TEST_F(ShippedIssuersTest, OpensslCaWithoutACaDirectoryIsUnconfigured) {
  auto issuer =
      Issuer("openssl-ca", kIssuers + "/openssl-ca/openssl-ca-issue.sh", dir_.path() + "/missing");
  auto result = issuer->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("does not exist"));
}

TEST_F(ShippedIssuersTest, OpensslCaRejectsWhatOpensslCaRefuses) {
  if (::access(kOpenssl, X_OK) != 0) GTEST_SKIP() << "openssl is not installed";
  const std::string ca = dir_.path() + "/openssl-ca";
  ASSERT_TRUE(common::MakeDirectories(ca + "/private", 0700).ok());
  ASSERT_TRUE(common::MakeDirectories(ca + "/newcerts", 0700).ok());
  Write(ca + "/index.txt", "");
  // A CA key that does not belong to the CA certificate: openssl ca refuses to sign.
  Run({kOpenssl, "req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout",
       ca + "/private/other.key", "-out", ca + "/ca.pem", "-subj", "/CN=mismatched CA", "-days",
       "30"});
  Run({kOpenssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
       ca + "/private/ca.key"});
  auto result =
      Issuer("openssl-ca", kIssuers + "/openssl-ca/openssl-ca-issue.sh", ca)->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kRejected);
  EXPECT_THAT(result->reason, HasSubstr("openssl ca refused the request"));
}

TEST_F(ShippedIssuersTest, EasyRsaIssuesAScomCertificate) {
  if (::access(kEasyRsa, X_OK) != 0) {
    GTEST_SKIP() << "easy-rsa is not installed (tools/install-deps.sh installs it)";
  }
  const std::string pki = dir_.path() + "/pki";
  // As docs/issuers.md: the CA is built with certfleet's x509-types (critical extensions).
  const std::vector<std::string> env = {"EASYRSA_BATCH=1",
                                        "EASYRSA_REQ_CN=certfleet test easy-rsa CA",
                                        "EASYRSA_EXT_DIR=" + kIssuers + "/easy-rsa/x509-types"};
  Run({kEasyRsa, "--batch", "--pki-dir=" + pki, "init-pki"}, env);
  Run({kEasyRsa, "--batch", "--pki-dir=" + pki, "--days=30", "build-ca", "nopass"}, env);

  auto issuer = Issuer("easy-rsa", kIssuers + "/easy-rsa/easyrsa-issue.sh", pki);
  auto first = issuer->Submit(request_);
  ASSERT_TRUE(first.ok()) << first.status();
  ExpectScomChain(*first);

  auto again = issuer->Submit(request_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->chain_pem, first->chain_pem);
}

TEST_F(ShippedIssuersTest, EasyRsaWithoutAPkiIsUnconfigured) {
  auto result = Issuer("easy-rsa", kIssuers + "/easy-rsa/easyrsa-issue.sh", dir_.path() + "/no-pki")
                    ->Submit(request_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("is not configured"));
}

}  // namespace
}  // namespace certfleet::controller::ca
