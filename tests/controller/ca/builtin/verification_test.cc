// Certificates of the builtin issuer, judged by others: certfleet's SCOM rules, and the three
// TLS stacks' own tools (OpenSSL, GnuTLS, NSS) run for real. A certificate any of them refuses
// would fail somewhere in a SCOM fleet's neighbourhood (gateways, Linux agents, monitoring).

#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/scom/rules.h"
#include "controller/ca/command/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/builtin/builtin_fixture.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::BuiltinFixture;
using ::certfleet::testing::kHostFqdn;
using common::crypto::X509Ptr;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class VerificationTest : public BuiltinFixture {
 protected:
  void SetUp() override {
    auto result = builtin_->Submit(request_);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->kind, IssuanceResult::Kind::kIssued) << result->reason;
    auto chain = common::crypto::CertificatesFromPem(result->chain_pem);
    ASSERT_TRUE(chain.ok()) << chain.status();
    ASSERT_EQ(chain->size(), 3u);
    chain_ = std::move(*chain);
    Write(leaf_path_, common::crypto::CertificateToPem(chain_[0].get()));
    Write(issuing_path_, common::crypto::CertificateToPem(chain_[1].get()));
    Write(root_path_, common::crypto::CertificateToPem(chain_[2].get()));
    Write(chain_path_, result->chain_pem);
  }

  void Write(const std::string& path, absl::string_view data) {
    ASSERT_TRUE(common::WriteFileAtomically(path, data, 0644).ok()) << path;
  }

  static bool Installed(const char* tool) { return ::access(tool, X_OK) == 0; }

  // Runs a tool; returns its result (the test fails when it cannot start).
  SubprocessResult Run(const std::vector<std::string>& argv) {
    SubprocessSpec spec;
    spec.argv = argv;
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
    auto run = RunSubprocess(spec);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : SubprocessResult{};
  }

  void ExpectSuccess(const std::vector<std::string>& argv, absl::string_view expected_output) {
    SubprocessResult run = Run(argv);
    EXPECT_EQ(run.end, SubprocessResult::End::kExited);
    EXPECT_EQ(run.exit_code, 0) << argv[0] << ":\n" << run.out << run.err;
    EXPECT_THAT(run.out + run.err, HasSubstr(std::string(expected_output)));
  }

  std::vector<X509Ptr> chain_;
  const std::string leaf_path_ = dir_.path() + "/leaf.pem";
  const std::string issuing_path_ = dir_.path() + "/issuing.pem";
  const std::string root_path_ = dir_.path() + "/root.pem";
  const std::string chain_path_ = dir_.path() + "/chain.pem";
};

TEST_F(VerificationTest, PassesCertfleetsScomRules) {
  auto info = common::crypto::DescribeCertificate(chain_[0].get(), false);
  ASSERT_TRUE(info.ok()) << info.status();
  absl::Status trusted = common::crypto::VerifyChain(chain_[0].get(), {chain_[1].get()},
                                                     {ca_.root().cert.get()}, clock_.Now());
  EXPECT_TRUE(trusted.ok()) << trusted;
  common::scom::EvaluationOptions options;
  options.now = clock_.Now();
  options.fqdn = std::string(kHostFqdn);
  options.chain_trusted = trusted.ok();
  options.require_private_key = false;
  EXPECT_THAT(common::scom::ProblemNames(common::scom::Evaluate(*info, options)), IsEmpty());
}

TEST_F(VerificationTest, OpensslVerifyAcceptsItForServerAndClientAuthentication) {
  if (!Installed("/usr/bin/openssl")) GTEST_SKIP() << "openssl is not installed";
  for (const char* purpose : {"sslserver", "sslclient"}) {
    ExpectSuccess(
        {"/usr/bin/openssl", "verify", "-x509_strict", "-purpose", purpose, "-verify_hostname",
         std::string(kHostFqdn), "-CAfile", root_path_, "-untrusted", issuing_path_, leaf_path_},
        ": OK");
  }
}

TEST_F(VerificationTest, GnutlsCerttoolVerifiesTheChain) {
  if (!Installed("/usr/bin/certtool")) {
    GTEST_SKIP() << "GnuTLS certtool is not installed (gnutls-bin; tools/install-deps.sh)";
  }
  // The chain as issued (leaf, issuing CA, root), self-contained.
  ExpectSuccess({"/usr/bin/certtool", "--verify-chain", "--infile", chain_path_},
                "Chain verification output: Verified.");
  // Against the root as the only trust anchor, for the host name and each purpose SCOM needs.
  for (absl::string_view purpose : {common::model::kServerAuthOid, common::model::kClientAuthOid}) {
    ExpectSuccess({"/usr/bin/certtool", "--verify", "--load-ca-certificate", root_path_, "--infile",
                   chain_path_, "--verify-hostname", std::string(kHostFqdn),
                   absl::StrCat("--verify-purpose=", purpose)},
                  "Chain verification output: Verified.");
  }
}

TEST_F(VerificationTest, NssVfychainAcceptsItAsSslServerAndClient) {
  if (!Installed("/usr/bin/certutil") || !Installed("/usr/bin/vfychain")) {
    GTEST_SKIP() << "NSS tools are not installed (libnss3-tools; tools/install-deps.sh)";
  }
  const std::string db = "sql:" + dir_.path() + "/nssdb";
  ASSERT_TRUE(common::MakeDirectories(dir_.path() + "/nssdb", 0700).ok());
  ExpectSuccess({"/usr/bin/certutil", "-N", "-d", db, "--empty-password"}, "");
  ExpectSuccess({"/usr/bin/certutil", "-A", "-d", db, "-n", "certfleet root", "-t", "CT,C,C", "-a",
                 "-i", root_path_},
                "");
  ExpectSuccess({"/usr/bin/certutil", "-A", "-d", db, "-n", "certfleet issuing", "-t", ",,", "-a",
                 "-i", issuing_path_},
                "");
  // -pp: libpkix (CERT_PKIXVerifyCert); -u 1: SSL server, -u 0: SSL client.
  for (const char* usage : {"1", "0"}) {
    ExpectSuccess({"/usr/bin/vfychain", "-d", db, "-pp", "-u", usage, "-a", leaf_path_},
                  "Chain is good!");
  }
  // The check has teeth: the same database refuses the leaf for e-mail signing.
  SubprocessResult email = Run({"/usr/bin/vfychain", "-d", db, "-pp", "-u", "4", "-a", leaf_path_});
  EXPECT_NE(email.exit_code, 0);
  EXPECT_THAT(email.out + email.err, HasSubstr("Chain is bad!"));
}

}  // namespace
}  // namespace certfleet::controller::ca
