#include "agent/client/identity_files.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/test_pki.h"

namespace certfleet::agent::client {
namespace {

using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class IdentityFilesTest : public ::testing::Test {
 protected:
  IdentityFilesTest() : pki_(TestPki::Create(kNow)) {
    char tmpl[] = "/tmp/certfleet-identity-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~IdentityFilesTest() override { std::filesystem::remove_all(dir_); }

  // An identity certificate valid from kNow - 1h to kNow + `lifetime`.
  TestCert NewIdentity(absl::Duration lifetime = absl::Hours(24 * 30)) {
    auto spec = pki_.ScomLeafSpec("host1.example.com");
    spec.not_before = kNow - absl::Hours(1);
    spec.not_after = kNow + lifetime;
    return pki_.Issue(spec);
  }

  StoredIdentity Stored(const TestCert& cert) {
    StoredIdentity identity;
    identity.agent_id = "0a1b2c";
    identity.ca_pem = pki_.root().cert_pem;
    identity.identity_pem = cert.cert_pem + pki_.issuing().cert_pem;
    identity.key_pem = cert.key_pem;
    return identity;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  TestPki pki_;
  std::string dir_;
};

TEST_F(IdentityFilesTest, AnEmptyDirectoryHoldsNoIdentity) {
  EXPECT_EQ(LoadIdentity(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(IdentityFilesTest, AWrittenIdentityLoadsWithTheLeafsValidity) {
  TestCert cert = NewIdentity();
  ASSERT_TRUE(WriteIdentity(dir_, Stored(cert)).ok());
  auto loaded = LoadIdentity(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->agent_id, "0a1b2c");
  EXPECT_EQ(loaded->ca_pem, pki_.root().cert_pem);
  EXPECT_EQ(loaded->key_pem, cert.key_pem);
  EXPECT_EQ(loaded->not_before, kNow - absl::Hours(1));
  EXPECT_EQ(loaded->not_after, kNow + absl::Hours(24 * 30));
  struct stat st;
  ASSERT_EQ(::stat(Path("identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(IdentityFilesTest, ReplaceIdentitySwapsKeyAndChainAndKeepsTheAgentAndCa) {
  ASSERT_TRUE(WriteIdentity(dir_, Stored(NewIdentity())).ok());
  TestCert renewed = NewIdentity(absl::Hours(24 * 60));
  ASSERT_TRUE(ReplaceIdentity(dir_, renewed.cert_pem, renewed.key_pem).ok());
  auto loaded = LoadIdentity(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->identity_pem, renewed.cert_pem);
  EXPECT_EQ(loaded->key_pem, renewed.key_pem);
  EXPECT_EQ(loaded->not_after, kNow + absl::Hours(24 * 60));
  EXPECT_EQ(loaded->agent_id, "0a1b2c");
  EXPECT_EQ(loaded->ca_pem, pki_.root().cert_pem);
  EXPECT_FALSE(std::filesystem::exists(Path("identity.pem.new")));
  EXPECT_FALSE(std::filesystem::exists(Path("identity.key.new")));
  struct stat st;
  ASSERT_EQ(::stat(Path("identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(IdentityFilesTest, AReplacementInterruptedAfterTheKeyMovedIsFinishedOnLoad) {
  TestCert old_cert = NewIdentity();
  ASSERT_TRUE(WriteIdentity(dir_, Stored(old_cert)).ok());
  TestCert renewed = NewIdentity(absl::Hours(24 * 60));
  // The state a crash right after the commit point leaves: the new key in place, the new chain
  // beside the old one.
  Write(Path("identity.key"), renewed.key_pem);
  Write(Path("identity.pem.new"), renewed.cert_pem);
  auto loaded = LoadIdentity(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->identity_pem, renewed.cert_pem);
  EXPECT_EQ(loaded->key_pem, renewed.key_pem);
  EXPECT_FALSE(std::filesystem::exists(Path("identity.pem.new")));
}

TEST_F(IdentityFilesTest, AReplacementInterruptedBeforeTheKeyMovedIsDroppedOnLoad) {
  TestCert old_cert = NewIdentity();
  ASSERT_TRUE(WriteIdentity(dir_, Stored(old_cert)).ok());
  TestCert renewed = NewIdentity(absl::Hours(24 * 60));
  Write(Path("identity.pem.new"), renewed.cert_pem);
  Write(Path("identity.key.new"), renewed.key_pem);
  auto loaded = LoadIdentity(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->key_pem, old_cert.key_pem);
  EXPECT_EQ(loaded->not_after, kNow + absl::Hours(24 * 30));
  EXPECT_FALSE(std::filesystem::exists(Path("identity.pem.new")));
  EXPECT_FALSE(std::filesystem::exists(Path("identity.key.new")));
}

TEST_F(IdentityFilesTest, AKeyThatIsNotTheChainsIsDataLoss) {
  ASSERT_TRUE(WriteIdentity(dir_, Stored(NewIdentity())).ok());
  Write(Path("identity.key"), NewIdentity().key_pem);
  auto loaded = LoadIdentity(dir_);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
}

TEST_F(IdentityFilesTest, AMissingFileOrAnUnreadableChainIsDataLoss) {
  ASSERT_TRUE(WriteIdentity(dir_, Stored(NewIdentity())).ok());
  const std::string chain = Read(Path("identity.pem"));
  Write(Path("identity.pem"), "not a certificate");
  EXPECT_EQ(LoadIdentity(dir_).status().code(), absl::StatusCode::kDataLoss);
  Write(Path("identity.pem"), chain);
  std::filesystem::remove(Path("ca.pem"));
  EXPECT_EQ(LoadIdentity(dir_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(IdentityFilesTest, IdentityValidityReadsTheLeafAndRefusesGarbage) {
  TestCert cert = NewIdentity(absl::Seconds(20));
  auto validity = IdentityValidity(cert.cert_pem + pki_.issuing().cert_pem);
  ASSERT_TRUE(validity.ok()) << validity.status();
  EXPECT_EQ(validity->first, kNow - absl::Hours(1));
  EXPECT_EQ(validity->second, kNow + absl::Seconds(20));
  EXPECT_EQ(IdentityValidity("garbage").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace certfleet::agent::client
