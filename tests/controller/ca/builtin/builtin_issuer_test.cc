#include "controller/ca/builtin/builtin_issuer.h"

#include <openssl/x509v3.h>
#include <sqlite3.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "common/model/certificate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/builtin/builtin_fixture.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::BuiltinFixture;
using ::certfleet::testing::CsrPem;
using ::certfleet::testing::kHostFqdn;
using ::certfleet::testing::kOtherHostFqdn;
using ::certfleet::testing::ScomCsrOptions;
using common::crypto::X509Ptr;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using Kind = IssuanceResult::Kind;

std::vector<X509Ptr> Chain(absl::string_view pem) {
  auto certs = common::crypto::CertificatesFromPem(pem);
  EXPECT_TRUE(certs.ok()) << certs.status();
  return certs.ok() ? std::move(*certs) : std::vector<X509Ptr>();
}

common::model::CertificateInfo Describe(X509* cert) {
  auto info = common::crypto::DescribeCertificate(cert, false);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : common::model::CertificateInfo();
}

class BuiltinIssuerTest : public BuiltinFixture {};

TEST_F(BuiltinIssuerTest, SignsAScomCertificateForTheCsrsKey) {
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->kind, Kind::kIssued);
  EXPECT_EQ(builtin_->Name(), "builtin");

  std::vector<X509Ptr> chain = Chain(result->chain_pem);
  ASSERT_EQ(chain.size(), 3u);
  X509* leaf = chain[0].get();
  EXPECT_EQ(common::crypto::CertificateToPem(chain[1].get()) +
                common::crypto::CertificateToPem(chain[2].get()),
            pki_->IssuingChainPem());
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), key_.get()), 1);

  common::model::CertificateInfo info = Describe(leaf);
  EXPECT_EQ(info.subject, absl::StrCat("CN=", kHostFqdn));
  EXPECT_THAT(info.dns_names, ElementsAre(std::string(kHostFqdn)));
  EXPECT_EQ(info.key_usage, common::model::kDigitalSignature | common::model::kKeyEncipherment);
  int ku = X509_get_ext_by_NID(leaf, NID_key_usage, -1);
  ASSERT_GE(ku, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(leaf, ku)), 1);
  EXPECT_THAT(info.extended_key_usage, ElementsAre(std::string(common::model::kServerAuthOid),
                                                   std::string(common::model::kClientAuthOid)));
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.signature_hash, "SHA256");
  EXPECT_TRUE(info.template_name.empty());
  // Whole seconds: X.509 times have no fractions.
  const absl::Time start =
      absl::FromUnixSeconds(absl::ToUnixSeconds(clock_.Now() - absl::Minutes(5)));
  EXPECT_EQ(info.not_before, start);
  EXPECT_EQ(info.not_after, start + absl::Hours(24 * 365));
  EXPECT_TRUE(
      common::crypto::VerifyChain(leaf, {chain[1].get()}, {ca_.root().cert.get()}, clock_.Now())
          .ok());
}

TEST_F(BuiltinIssuerTest, SerialsAreRandomPositiveAndSixteenBytesLong) {
  std::set<std::string> serials;
  for (int i = 0; i < 8; ++i) {
    request_.renewal_id = absl::StrCat("ren-", i);
    auto result = builtin_->Submit(request_);
    ASSERT_TRUE(result.ok()) << result.status();
    std::string serial = Describe(Chain(result->chain_pem)[0].get()).serial;
    EXPECT_EQ(serial.size(), 32u) << serial;
    EXPECT_LT(serial[0], '8') << serial;  // top bit clear: a positive INTEGER without a 00 byte
    serials.insert(serial);
  }
  EXPECT_THAT(serials, SizeIs(8));
}

TEST_F(BuiltinIssuerTest, RecordsTheIssuanceBeforeHandingItOut) {
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  common::model::CertificateInfo info = Describe(Chain(result->chain_pem)[0].get());

  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  ASSERT_THAT(*recorded, SizeIs(1));
  const store::IssuanceRecord& record = recorded->front();
  EXPECT_EQ(record.serial, info.serial);
  EXPECT_EQ(record.issuer, "builtin");
  EXPECT_EQ(record.renewal_id, "ren-1");
  EXPECT_EQ(record.agent_id, "agent-1");
  EXPECT_EQ(record.fqdn, kHostFqdn);
  EXPECT_EQ(record.thumbprint, info.thumbprint);
  EXPECT_EQ(record.not_before, info.not_before);
  EXPECT_EQ(record.not_after, info.not_after);
  EXPECT_EQ(record.issued_at, clock_.Now());
  EXPECT_EQ(record.certificate_pem + pki_->IssuingChainPem(), result->chain_pem);
}

TEST_F(BuiltinIssuerTest, ACertificateThatCannotBeRecordedIsNotHandedOut) {
  // Another connection holds the write lock: the store cannot record (Unavailable).
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto result = builtin_->Submit(request_);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);

  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("recording the issuance"));
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, IsEmpty());

  // Once the store works again, the renewal gets a certificate.
  auto retried = builtin_->Submit(request_);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->kind, Kind::kIssued);
}

TEST_F(BuiltinIssuerTest, ASecondSubmitOrPollReturnsTheRecordedCertificate) {
  auto first = builtin_->Submit(request_);
  ASSERT_TRUE(first.ok()) << first.status();
  clock_.Advance(absl::Hours(1));
  auto second = builtin_->Submit(request_);
  ASSERT_TRUE(second.ok()) << second.status();
  auto polled = builtin_->Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(second->chain_pem, first->chain_pem);
  EXPECT_EQ(polled->chain_pem, first->chain_pem);
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, SizeIs(1));
}

TEST_F(BuiltinIssuerTest, ANewKeyForTheSameRenewalGetsItsOwnCertificate) {
  auto first = builtin_->Submit(request_);
  ASSERT_TRUE(first.ok()) << first.status();
  common::crypto::EvpPkeyPtr new_key = ca_.NewRsaKey(2048);
  auto second = builtin_->Submit(RequestFor(new_key.get(), kHostFqdn));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->chain_pem, first->chain_pem);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(Chain(second->chain_pem)[0].get()), new_key.get()), 1);
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, SizeIs(2));
}

TEST_F(BuiltinIssuerTest, ConcurrentSubmitsForOneRenewalSignOnce) {
  std::vector<std::string> chains(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < chains.size(); ++i) {
    threads.emplace_back([&, i] {
      auto result = builtin_->Submit(request_);
      if (result.ok()) chains[i] = result->chain_pem;
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& chain : chains) EXPECT_EQ(chain, chains[0]);
  EXPECT_FALSE(chains[0].empty());
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, SizeIs(1));
}

TEST_F(BuiltinIssuerTest, NeverSignsAnotherHostsName) {
  auto result = builtin_->Submit(RequestFor(key_.get(), kOtherHostFqdn));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kRejected);
  EXPECT_THAT(result->reason, HasSubstr("CSR refused by policy"));
  EXPECT_THAT(result->reason, HasSubstr(std::string(kOtherHostFqdn)));
  EXPECT_TRUE(result->chain_pem.empty());
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, IsEmpty());
}

TEST_F(BuiltinIssuerTest, PutsTheProfilesExtraNamesAfterTheFqdn) {
  request_.profile.extra_dns_names = {"scom.corp.example.com"};
  request_.csr_pem = CsrPem(key_.get(), ScomCsrOptions(kHostFqdn, {"scom.corp.example.com"}));
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->kind, Kind::kIssued) << result->reason;
  EXPECT_THAT(Describe(Chain(result->chain_pem)[0].get()).dns_names,
              ElementsAre(std::string(kHostFqdn), "scom.corp.example.com"));
}

TEST_F(BuiltinIssuerTest, AddsTheFqdnAsFirstSanWhenTheCsrHasNone) {
  common::crypto::CsrOptions options = ScomCsrOptions(kHostFqdn);
  options.dns_names.clear();
  request_.csr_pem = CsrPem(key_.get(), options);
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->kind, Kind::kIssued) << result->reason;
  EXPECT_THAT(Describe(Chain(result->chain_pem)[0].get()).dns_names,
              ElementsAre(std::string(kHostFqdn)));
}

TEST_F(BuiltinIssuerTest, FollowsTheProfilesHashValidityKeyUsageAndTemplate) {
  request_.profile.signature_hash = "SHA384";
  request_.profile.validity = absl::Hours(24 * 10);
  request_.profile.key_usage = common::model::kDigitalSignature | common::model::kNonRepudiation |
                               common::model::kKeyEncipherment | common::model::kDataEncipherment;
  request_.profile.template_name = "SCOMCert";
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->kind, Kind::kIssued) << result->reason;
  common::model::CertificateInfo info = Describe(Chain(result->chain_pem)[0].get());
  EXPECT_EQ(info.signature_hash, "SHA384");
  EXPECT_EQ(info.not_after - info.not_before, absl::Hours(24 * 10));
  EXPECT_EQ(info.key_usage, request_.profile.key_usage);
  EXPECT_EQ(info.template_name, "SCOMCert");
}

TEST_F(BuiltinIssuerTest, AProfileTheControllerWouldRefuseIsAnError) {
  request_.profile.key_bits = 1024;
  EXPECT_EQ(builtin_->Submit(request_).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(BuiltinIssuerTest, ARequestWithoutRenewalIdIsAnError) {
  request_.renewal_id.clear();
  EXPECT_EQ(builtin_->Submit(request_).status().code(), absl::StatusCode::kInvalidArgument);
}

// A controller whose issuing CA ends in a year (the TestPki started four years ago).
class BuiltinIssuerNearCaEndTest : public BuiltinFixture {
 protected:
  BuiltinIssuerNearCaEndTest() : BuiltinFixture(absl::Now() - absl::Hours(24 * 365 * 4)) {}
};

TEST_F(BuiltinIssuerNearCaEndTest, NeverOutlivesTheIssuingCa) {
  request_.profile.validity = absl::Hours(24 * 365 * 3);
  auto result = builtin_->Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->kind, Kind::kIssued) << result->reason;
  std::vector<X509Ptr> chain = Chain(result->chain_pem);
  EXPECT_EQ(Describe(chain[0].get()).not_after, Describe(chain[1].get()).not_after);
}

}  // namespace
}  // namespace certfleet::controller::ca
