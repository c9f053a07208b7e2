#include "controller/enrollment/enrollment_service.h"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/model/identity.h"
#include "common/model/join_token.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::enrollment {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::LoadSeededControllerPki;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());

CreateTokenRequest TokenRequest(absl::Duration ttl, std::string fqdn = "",
                                std::map<std::string, std::string> labels = {},
                                std::string created_by = "") {
  CreateTokenRequest request;
  request.ttl = ttl;
  request.fqdn = std::move(fqdn);
  request.labels = std::move(labels);
  request.created_by = std::move(created_by);
  return request;
}

class EnrollmentServiceTest : public ::testing::Test {
 protected:
  EnrollmentServiceTest() : ca_(TestPki::Create(kNow)), clock_(kNow) {}

  void SetUp() override {
    auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto store = store::SqliteStore::Open({.path = DbPath()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    service_ = std::make_unique<EnrollmentService>(*store_, *pki_, clock_);
    agent_key_ = TestPki::NewEcKey();
  }

  std::string DbPath() const { return dir_.path() + "/controller.db"; }

  // A token from the service; fails the test when it cannot be made.
  std::string NewToken(CreateTokenRequest request = TokenRequest(absl::Hours(1))) {
    auto created = service_->CreateToken(request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->token : std::string();
  }

  std::string AgentCsr(EVP_PKEY* key = nullptr) {
    common::crypto::CsrOptions options;
    options.subject_cn = "agent";
    auto csr = common::crypto::BuildCsr(key != nullptr ? key : agent_key_.get(), options);
    EXPECT_TRUE(csr.ok()) << csr.status();
    return csr.ok() ? common::crypto::CsrToPem(csr->get()) : std::string();
  }

  EnrollRequest Request(const std::string& token, const std::string& fqdn) {
    EnrollRequest request;
    request.token = token;
    request.csr_pem = AgentCsr();
    request.fqdn = fqdn;
    request.platform = "lab";
    request.agent_version = "0.1.0";
    return request;
  }

  size_t AgentCount() {
    auto agents = store_->ListAgents();
    EXPECT_TRUE(agents.ok()) << agents.status();
    return agents.ok() ? agents->size() : 0;
  }

  TestPki ca_;
  FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<ca::ControllerPki> pki_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EnrollmentService> service_;
  common::crypto::EvpPkeyPtr agent_key_;
};

// --- CreateToken ---

TEST_F(EnrollmentServiceTest, CreateTokenRejectsATtlOfZeroOrLessWithInvalidArgument) {
  for (absl::Duration ttl : {absl::ZeroDuration(), absl::Seconds(-1), -absl::Hours(1)}) {
    EXPECT_EQ(service_->CreateToken(TokenRequest(ttl)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << ttl;
  }
}

TEST_F(EnrollmentServiceTest, CreateTokenRejectsATtlOverSevenDaysWithInvalidArgument) {
  EXPECT_EQ(service_->CreateToken(TokenRequest(EnrollmentService::kMaxTokenTtl + absl::Seconds(1)))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EnrollmentServiceTest, CreateTokenAcceptsTtlsFromOneSecondToExactlySevenDays) {
  EXPECT_EQ(EnrollmentService::kMaxTokenTtl, absl::Hours(24 * 7));
  for (absl::Duration ttl : {absl::Seconds(1), absl::Hours(1), EnrollmentService::kMaxTokenTtl}) {
    auto created = service_->CreateToken(TokenRequest(ttl));
    ASSERT_TRUE(created.ok()) << ttl << ": " << created.status();
    EXPECT_EQ(created->expires_at, kNow + ttl);
  }
}

TEST_F(EnrollmentServiceTest, CreateTokenRejectsAMalformedFqdnWithInvalidArgument) {
  for (const char* fqdn : {"bad_host.example.com", "-host.example.com", "host..example.com",
                           "host.example.com.", "two words", "host:443"}) {
    EXPECT_EQ(service_->CreateToken(TokenRequest(absl::Hours(1), fqdn)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << fqdn;
  }
}

TEST_F(EnrollmentServiceTest, CreateTokenRejectsALabelWithAnEmptyOrLongKeyOrALongValue) {
  const std::vector<std::map<std::string, std::string>> bad = {
      {{"", "x"}},
      {{std::string(64, 'k'), "x"}},
      {{"site", std::string(254, 'v')}},
  };
  for (const auto& labels : bad) {
    EXPECT_EQ(service_->CreateToken(TokenRequest(absl::Hours(1), "", labels)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto longest = service_->CreateToken(
      TokenRequest(absl::Hours(1), "", {{std::string(63, 'k'), std::string(253, 'v')}}));
  EXPECT_TRUE(longest.ok()) << longest.status();
}

TEST_F(EnrollmentServiceTest, CreateTokenReturnsAJoinTokenThatPinsThisControllersRoot) {
  auto created = service_->CreateToken(TokenRequest(absl::Minutes(30)));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(absl::StartsWith(created->token, "cfjt1."));
  auto token = common::model::ParseJoinToken(created->token);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->ca_pin, pki_->RootPin());
  EXPECT_EQ(token->ca_pin, common::crypto::Sha256Hex(ca_.root().der));
  EXPECT_EQ(token->secret.size(), 43u);  // 32 random bytes in base64url
  EXPECT_EQ(created->expires_at, kNow + absl::Minutes(30));
}

TEST_F(EnrollmentServiceTest, CreateTokenMakesADifferentSecretEveryTime) {
  auto first = common::model::ParseJoinToken(NewToken());
  auto second = common::model::ParseJoinToken(NewToken());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->secret, second->secret);
}

TEST_F(EnrollmentServiceTest, CreateTokenStoresTheTokenUnderTheHashOfItsSecretOnly) {
  const std::string text =
      NewToken(TokenRequest(absl::Hours(1), "Host1.Example.com", {{"site", "paris"}}, "alice"));
  auto token = common::model::ParseJoinToken(text);
  ASSERT_TRUE(token.ok()) << token.status();
  auto record = store_->ConsumeJoinToken(common::crypto::Sha256Hex(token->secret),
                                         "host1.example.com", "agent-1", kNow);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->fqdn, "host1.example.com");  // stored lowercase
  EXPECT_EQ(record->labels, (std::map<std::string, std::string>{{"site", "paris"}}));
  EXPECT_EQ(record->created_by, "alice");
  EXPECT_EQ(record->created_at, kNow);
  EXPECT_EQ(record->expires_at, kNow + absl::Hours(1));

  // Nothing in the state directory holds the secret itself.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path())) {
    if (!entry.is_regular_file()) continue;
    auto data = common::ReadFileToString(entry.path().string());
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_THAT(*data, Not(HasSubstr(token->secret))) << entry.path();
  }
}

// --- Enroll ---

TEST_F(EnrollmentServiceTest, EnrollReturnsAnAgentIdAnIdentityChainAndTheCaBundle) {
  const std::string token =
      NewToken(TokenRequest(absl::Hours(1), "", {{"site", "paris"}, {"tier", "1"}}));
  auto result = service_->Enroll(Request(token, "host1.example.com"));
  ASSERT_TRUE(result.ok()) << result.status();

  EXPECT_THAT(result->agent_id, SizeIs(32));
  EXPECT_EQ(result->agent_id, absl::AsciiStrToLower(result->agent_id));
  EXPECT_EQ(result->ca_bundle_pem, pki_->RootPem());

  auto chain = common::crypto::CertificatesFromPem(result->identity_chain_pem);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 2u);
  auto roots = common::crypto::CertificatesFromPem(result->ca_bundle_pem);
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(
      common::crypto::VerifyChain((*chain)[0].get(), {(*chain)[1].get()}, {(*roots)[0].get()}, kNow)
          .ok());
  auto leaf = common::crypto::DescribeCertificate((*chain)[0].get(), false);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_THAT(leaf->uris, ElementsAre(common::model::AgentIdentityUri(result->agent_id)));
  EXPECT_EQ(leaf->subject_cn, "host1.example.com");

  auto agent = store_->GetAgent(result->agent_id);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->fqdn, "host1.example.com");
  EXPECT_EQ(agent->labels, (std::map<std::string, std::string>{{"site", "paris"}, {"tier", "1"}}));
  EXPECT_EQ(agent->platform, "lab");
  EXPECT_EQ(agent->version, "0.1.0");
  EXPECT_EQ(agent->enrolled_at, kNow);
  EXPECT_EQ(agent->identity_serial, leaf->serial);
  EXPECT_EQ(agent->identity_not_after, leaf->not_after);
}

TEST_F(EnrollmentServiceTest, EnrollStoresTheFqdnInLowercase) {
  auto result = service_->Enroll(Request(NewToken(), "HOST1.Example.COM"));
  ASSERT_TRUE(result.ok()) << result.status();
  auto agent = store_->GetAgent(result->agent_id);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->fqdn, "host1.example.com");
}

TEST_F(EnrollmentServiceTest, EnrollGivesEveryAgentItsOwnId) {
  auto first = service_->Enroll(Request(NewToken(), "host1.example.com"));
  auto second = service_->Enroll(Request(NewToken(), "host1.example.com"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->agent_id, second->agent_id);
  EXPECT_EQ(AgentCount(), 2u);
}

TEST_F(EnrollmentServiceTest, EnrollWithAUsedTokenIsFailedPreconditionAndCreatesNoAgent) {
  const std::string token = NewToken();
  ASSERT_TRUE(service_->Enroll(Request(token, "host1.example.com")).ok());
  auto again = service_->Enroll(Request(token, "host1.example.com"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  auto other_host = service_->Enroll(Request(token, "host2.example.com"));
  EXPECT_EQ(other_host.status().code(), absl::StatusCode::kFailedPrecondition)
      << other_host.status();
  EXPECT_EQ(AgentCount(), 1u);
}

TEST_F(EnrollmentServiceTest, EnrollWithAnUnknownSecretIsUnauthenticated) {
  NewToken();
  const std::string forged = common::model::FormatJoinToken(
      {common::crypto::Base64UrlEncode(common::crypto::RandomBytes(32)), pki_->RootPin()});
  auto result = service_->Enroll(Request(forged, "host1.example.com"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << result.status();
  EXPECT_EQ(AgentCount(), 0u);
}

TEST_F(EnrollmentServiceTest, EnrollWithAnExpiredTokenIsFailedPrecondition) {
  const std::string token = NewToken(TokenRequest(absl::Hours(1)));
  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  auto result = service_->Enroll(Request(token, "host1.example.com"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_EQ(AgentCount(), 0u);
}

TEST_F(EnrollmentServiceTest, EnrollJustBeforeExpiryStillWorks) {
  const std::string token = NewToken(TokenRequest(absl::Hours(1)));
  clock_.Advance(absl::Hours(1) - absl::Seconds(1));
  auto result = service_->Enroll(Request(token, "host1.example.com"));
  EXPECT_TRUE(result.ok()) << result.status();
}

TEST_F(EnrollmentServiceTest, AnFqdnBoundTokenRefusesAnotherHostAndStaysUsableByTheRightOne) {
  const std::string token = NewToken(TokenRequest(absl::Hours(1), "host1.example.com"));
  auto wrong = service_->Enroll(Request(token, "host2.example.com"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_EQ(AgentCount(), 0u);

  auto right = service_->Enroll(Request(token, "Host1.Example.com"));
  ASSERT_TRUE(right.ok()) << right.status();
  auto agent = store_->GetAgent(right->agent_id);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->fqdn, "host1.example.com");
}

TEST_F(EnrollmentServiceTest, ATokenBoundWithCapitalsIsUsableByTheHostInAnyCase) {
  const std::string token = NewToken(TokenRequest(absl::Hours(1), "HOST1.EXAMPLE.COM"));
  EXPECT_TRUE(service_->Enroll(Request(token, "host1.example.com")).ok());
}

TEST_F(EnrollmentServiceTest, ATokenPinningAnotherControllerIsInvalidArgumentAndNotConsumed) {
  auto token = common::model::ParseJoinToken(NewToken());
  ASSERT_TRUE(token.ok()) << token.status();
  TestPki other = TestPki::Create(kNow, "Other Controller");
  const std::string other_pin = common::crypto::Sha256Hex(other.root().der);
  ASSERT_NE(other_pin, pki_->RootPin());
  auto result = service_->Enroll(
      Request(common::model::FormatJoinToken({token->secret, other_pin}), "host1.example.com"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();

  EXPECT_TRUE(
      service_->Enroll(Request(common::model::FormatJoinToken(*token), "host1.example.com")).ok());
}

TEST_F(EnrollmentServiceTest, AGarbageCsrIsInvalidArgumentAndTheTokenIsNotConsumed) {
  const std::string token = NewToken();
  EnrollRequest request = Request(token, "host1.example.com");
  request.csr_pem =
      "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n"
      "-----END CERTIFICATE REQUEST-----\n";
  auto result = service_->Enroll(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_EQ(AgentCount(), 0u);

  EXPECT_TRUE(service_->Enroll(Request(token, "host1.example.com")).ok());
}

TEST_F(EnrollmentServiceTest, AWeakCsrKeyIsInvalidArgumentAndTheTokenIsNotConsumed) {
  const std::string token = NewToken();
  common::crypto::EvpPkeyPtr weak = ca_.NewRsaKey(1024);
  EnrollRequest request = Request(token, "host1.example.com");
  request.csr_pem = AgentCsr(weak.get());
  auto result = service_->Enroll(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();

  EXPECT_TRUE(service_->Enroll(Request(token, "host1.example.com")).ok());
}

TEST_F(EnrollmentServiceTest, AMalformedFqdnIsInvalidArgumentAndTheTokenIsNotConsumed) {
  const std::string token = NewToken();
  for (const char* fqdn : {"", "bad_host", "host..example.com"}) {
    auto result = service_->Enroll(Request(token, fqdn));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << fqdn << ": " << result.status();
  }
  EXPECT_TRUE(service_->Enroll(Request(token, "host1.example.com")).ok());
}

TEST_F(EnrollmentServiceTest, AMalformedTokenIsInvalidArgument) {
  for (const std::string& token :
       {std::string(""), std::string("cfjt1.short.ABCD"), pki_->RootPin()}) {
    auto result = service_->Enroll(Request(token, "host1.example.com"));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  }
}

TEST_F(EnrollmentServiceTest, EnrollErrorsNeverContainTheTokenSecret) {
  const std::string bound = NewToken(TokenRequest(absl::Hours(1), "host1.example.com"));
  const std::string used = NewToken();
  ASSERT_TRUE(service_->Enroll(Request(used, "host9.example.com")).ok());
  const std::string expiring = NewToken(TokenRequest(absl::Seconds(1)));
  const std::string forged = common::model::FormatJoinToken(
      {common::crypto::Base64UrlEncode(common::crypto::RandomBytes(32)), pki_->RootPin()});
  clock_.Advance(absl::Seconds(2));

  EnrollRequest garbage_csr = Request(NewToken(), "host1.example.com");
  garbage_csr.csr_pem = "garbage";
  const std::vector<EnrollRequest> requests = {
      Request(bound, "host2.example.com"),
      Request(used, "host9.example.com"),
      Request(expiring, "host1.example.com"),
      Request(forged, "host1.example.com"),
      Request(bound, "bad_host"),
      garbage_csr,
  };
  for (const EnrollRequest& request : requests) {
    auto token = common::model::ParseJoinToken(request.token);
    ASSERT_TRUE(token.ok());
    absl::Status status = service_->Enroll(request).status();
    ASSERT_FALSE(status.ok());
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr(token->secret))) << status;
  }
}

// --- Re-enrollment tokens ---

// A CSR for `key` with subject CN `cn` and the given subjectAltNames.
std::string CsrFor(EVP_PKEY* key, const std::string& cn, std::vector<std::string> dns_names = {},
                   std::vector<std::string> uris = {}) {
  common::crypto::CsrOptions options;
  options.subject_cn = cn;
  options.dns_names = std::move(dns_names);
  options.uris = std::move(uris);
  auto csr = common::crypto::BuildCsr(key, options);
  EXPECT_TRUE(csr.ok()) << csr.status();
  return csr.ok() ? common::crypto::CsrToPem(csr->get()) : std::string();
}

class ReenrollmentTest : public EnrollmentServiceTest {
 protected:
  void SetUp() override {
    EnrollmentServiceTest::SetUp();
    if (HasFatalFailure()) return;
    auto enrolled = service_->Enroll(
        Request(NewToken(TokenRequest(absl::Hours(1), "", {{"site", "paris"}})), kFqdn));
    ASSERT_TRUE(enrolled.ok()) << enrolled.status();
    agent_ = *enrolled;
  }

  static constexpr char kFqdn[] = "host1.example.com";

  // A re-enrollment token for `agent` (id or FQDN).
  std::string ReenrollToken(const std::string& agent) {
    CreateTokenRequest request = TokenRequest(absl::Hours(1));
    request.agent = agent;
    return NewToken(request);
  }

  EnrollRequest Reenroll(const std::string& token, const std::string& agent_id,
                         const std::string& fqdn = kFqdn) {
    EnrollRequest request = Request(token, fqdn);
    request.csr_pem = CsrFor(new_key_.get(), fqdn);
    request.agent_id = agent_id;
    return request;
  }

  store::AgentRecord Stored(const std::string& agent_id) {
    auto agent = store_->GetAgent(agent_id);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *agent : store::AgentRecord();
  }

  EnrollResult agent_;
  common::crypto::EvpPkeyPtr new_key_ = TestPki::NewEcKey();
};

TEST_F(ReenrollmentTest, CreateTokenWithAnAgentIdBindsTheTokenToThatAgentAndItsFqdn) {
  CreateTokenRequest request = TokenRequest(absl::Hours(1));
  request.agent = agent_.agent_id;
  auto created = service_->CreateToken(request);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->agent_id, agent_.agent_id);
  EXPECT_EQ(created->fqdn, kFqdn);
}

TEST_F(ReenrollmentTest, CreateTokenWithAnAgentsFqdnFindsTheAgent) {
  CreateTokenRequest request = TokenRequest(absl::Hours(1));
  request.agent = "HOST1.example.com";
  auto created = service_->CreateToken(request);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->agent_id, agent_.agent_id);
}

TEST_F(ReenrollmentTest, CreateTokenForAnUnknownAgentIsNotFound) {
  CreateTokenRequest request = TokenRequest(absl::Hours(1));
  request.agent = "nobody.example.com";
  EXPECT_EQ(service_->CreateToken(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ReenrollmentTest, CreateTokenForAnAgentRefusesLabelsAndAnotherFqdn) {
  CreateTokenRequest labelled = TokenRequest(absl::Hours(1), "", {{"site", "lyon"}});
  labelled.agent = agent_.agent_id;
  EXPECT_EQ(service_->CreateToken(labelled).status().code(), absl::StatusCode::kInvalidArgument);
  CreateTokenRequest other_fqdn = TokenRequest(absl::Hours(1), "host2.example.com");
  other_fqdn.agent = agent_.agent_id;
  EXPECT_EQ(service_->CreateToken(other_fqdn).status().code(), absl::StatusCode::kInvalidArgument);
  CreateTokenRequest same_fqdn = TokenRequest(absl::Hours(1), "Host1.Example.com");
  same_fqdn.agent = agent_.agent_id;
  EXPECT_TRUE(service_->CreateToken(same_fqdn).ok());
}

TEST_F(ReenrollmentTest, ReenrollKeepsTheAgentIdAndLabelsAndRecordsTheNewIdentity) {
  clock_.Advance(absl::Hours(24 * 40));  // the old identity expired long ago
  auto result = service_->Enroll(Reenroll(ReenrollToken(agent_.agent_id), agent_.agent_id));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->agent_id, agent_.agent_id);
  EXPECT_EQ(AgentCount(), 1u);

  auto chain = common::crypto::CertificatesFromPem(result->identity_chain_pem);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_FALSE(chain->empty());
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(new_key_.get(), (*chain)[0].get()));
  auto leaf = common::crypto::DescribeCertificate((*chain)[0].get(), false);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_THAT(leaf->uris, ElementsAre(common::model::AgentIdentityUri(agent_.agent_id)));
  EXPECT_EQ(leaf->subject_cn, kFqdn);
  EXPECT_EQ(leaf->not_after, clock_.Now() + ca::ControllerPkiOptions().agent_identity_lifetime);

  store::AgentRecord stored = Stored(agent_.agent_id);
  EXPECT_EQ(stored.identity_serial, leaf->serial);
  EXPECT_NE(stored.identity_serial, agent_.identity_serial);
  EXPECT_EQ(stored.identity_not_after, leaf->not_after);
  EXPECT_EQ(stored.labels, (std::map<std::string, std::string>{{"site", "paris"}}));
  EXPECT_EQ(result->identity_serial, leaf->serial);
  EXPECT_EQ(result->identity_not_after, leaf->not_after);
}

TEST_F(ReenrollmentTest, AReenrollmentTokenIsSingleUse) {
  const std::string token = ReenrollToken(agent_.agent_id);
  ASSERT_TRUE(service_->Enroll(Reenroll(token, agent_.agent_id)).ok());
  auto again = service_->Enroll(Reenroll(token, agent_.agent_id));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
}

TEST_F(ReenrollmentTest, AReenrollmentTokenNeverEnrollsANewAgent) {
  const std::string token = ReenrollToken(agent_.agent_id);
  auto fresh = service_->Enroll(Request(token, kFqdn));  // no agent id: a new agent
  EXPECT_EQ(fresh.status().code(), absl::StatusCode::kPermissionDenied) << fresh.status();
  EXPECT_EQ(AgentCount(), 1u);
  // Still usable by its agent.
  EXPECT_TRUE(service_->Enroll(Reenroll(token, agent_.agent_id)).ok());
}

TEST_F(ReenrollmentTest, AnotherAgentCannotUseTheToken) {
  auto other = service_->Enroll(Request(NewToken(), "host2.example.com"));
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string token = ReenrollToken(agent_.agent_id);
  for (const std::string& fqdn : {std::string("host2.example.com"), std::string(kFqdn)}) {
    auto refused = service_->Enroll(Reenroll(token, other->agent_id, fqdn));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied)
        << fqdn << ": " << refused.status();
  }
  EXPECT_EQ(Stored(other->agent_id).identity_serial, other->identity_serial);
  EXPECT_TRUE(service_->Enroll(Reenroll(token, agent_.agent_id)).ok());
}

TEST_F(ReenrollmentTest, APlainJoinTokenCannotReenroll) {
  const std::string token = NewToken();
  auto refused = service_->Enroll(Reenroll(token, agent_.agent_id));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_EQ(Stored(agent_.agent_id).identity_serial, agent_.identity_serial);
  // It still enrolls a new agent.
  EXPECT_TRUE(service_->Enroll(Request(token, "host2.example.com")).ok());
}

TEST_F(ReenrollmentTest, ReenrollFromAnotherFqdnOrWithACsrForAnotherHostIsPermissionDenied) {
  const std::string token = ReenrollToken(agent_.agent_id);
  EnrollRequest other_fqdn = Reenroll(token, agent_.agent_id, "host2.example.com");
  EXPECT_EQ(service_->Enroll(other_fqdn).status().code(), absl::StatusCode::kPermissionDenied);
  EnrollRequest other_cn = Reenroll(token, agent_.agent_id);
  other_cn.csr_pem = CsrFor(new_key_.get(), "host2.example.com");
  EXPECT_EQ(service_->Enroll(other_cn).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(service_->Enroll(Reenroll(token, agent_.agent_id)).ok());
}

TEST_F(ReenrollmentTest, ReenrollingAnUnknownAgentIsNotFoundAndAMalformedIdInvalidArgument) {
  const std::string token = ReenrollToken(agent_.agent_id);
  EXPECT_EQ(service_->Enroll(Reenroll(token, "0123456789abcdef")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->Enroll(Reenroll(token, "a/b")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(service_->Enroll(Reenroll(token, agent_.agent_id)).ok());
}

// --- RenewIdentity ---

TEST_F(ReenrollmentTest, RenewIdentitySignsTheNewKeyForTheSameAgentAndRecordsIt) {
  clock_.Advance(absl::Hours(24 * 15));
  auto renewed = service_->RenewIdentity(agent_.agent_id, CsrFor(new_key_.get(), kFqdn));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->agent_id, agent_.agent_id);
  EXPECT_EQ(renewed->ca_bundle_pem, pki_->RootPem());

  auto chain = common::crypto::CertificatesFromPem(renewed->identity_chain_pem);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 2u);
  auto roots = common::crypto::CertificatesFromPem(renewed->ca_bundle_pem);
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(common::crypto::VerifyChain((*chain)[0].get(), {(*chain)[1].get()},
                                          {(*roots)[0].get()}, clock_.Now())
                  .ok());
  EXPECT_TRUE(common::crypto::KeyMatchesCertificate(new_key_.get(), (*chain)[0].get()));
  auto leaf = common::crypto::DescribeCertificate((*chain)[0].get(), false);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_THAT(leaf->uris, ElementsAre(common::model::AgentIdentityUri(agent_.agent_id)));
  EXPECT_EQ(leaf->subject_cn, kFqdn);
  EXPECT_EQ(leaf->not_after, clock_.Now() + ca::ControllerPkiOptions().agent_identity_lifetime);
  EXPECT_EQ(renewed->identity_not_after, leaf->not_after);
  EXPECT_EQ(renewed->identity_serial, leaf->serial);

  store::AgentRecord stored = Stored(agent_.agent_id);
  EXPECT_EQ(stored.identity_serial, leaf->serial);
  EXPECT_NE(stored.identity_serial, agent_.identity_serial);
  EXPECT_EQ(stored.identity_not_after, leaf->not_after);
  EXPECT_EQ(AgentCount(), 1u);
}

TEST_F(ReenrollmentTest, RenewIdentityAcceptsACsrWithoutASubjectOrWithTheAgentsOwnNames) {
  EXPECT_TRUE(service_->RenewIdentity(agent_.agent_id, CsrFor(new_key_.get(), "")).ok());
  EXPECT_TRUE(service_
                  ->RenewIdentity(agent_.agent_id,
                                  CsrFor(new_key_.get(), "HOST1.example.com", {kFqdn},
                                         {common::model::AgentIdentityUri(agent_.agent_id)}))
                  .ok());
}

TEST_F(ReenrollmentTest, RenewIdentityForACsrNamingAnotherHostOrAgentIsPermissionDenied) {
  const std::vector<std::string> csrs = {
      CsrFor(new_key_.get(), "host2.example.com"),
      CsrFor(new_key_.get(), kFqdn, {"host2.example.com"}),
      CsrFor(new_key_.get(), kFqdn, {}, {common::model::AgentIdentityUri("someone-else")}),
      CsrFor(new_key_.get(), kFqdn, {}, {"certfleet://operator/admin/mallory"}),
  };
  for (const std::string& csr : csrs) {
    auto refused = service_->RenewIdentity(agent_.agent_id, csr);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  }
  EXPECT_EQ(Stored(agent_.agent_id).identity_serial, agent_.identity_serial);
}

TEST_F(ReenrollmentTest, RenewIdentityForAGarbageCsrOrAWeakKeyIsInvalidArgument) {
  EXPECT_EQ(service_->RenewIdentity(agent_.agent_id, "garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  common::crypto::EvpPkeyPtr weak = ca_.NewRsaKey(1024);
  EXPECT_EQ(service_->RenewIdentity(agent_.agent_id, CsrFor(weak.get(), kFqdn)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Stored(agent_.agent_id).identity_serial, agent_.identity_serial);
}

TEST_F(ReenrollmentTest, RenewIdentityForAnAgentNoLongerEnrolledIsPermissionDenied) {
  auto refused = service_->RenewIdentity("0123456789abcdef", CsrFor(new_key_.get(), kFqdn));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
}

// --- IsValidFqdn ---

TEST(IsValidFqdn, AcceptsHostNamesOfLettersDigitsAndInnerHyphens) {
  for (const std::string& fqdn :
       {std::string("host1.example.com"), std::string("a"), std::string("HOST-1.Example.COM"),
        std::string("123.example.com"), std::string("x--y.example"), std::string(63, 'a'),
        std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
            std::string(61, 'd')}) {
    EXPECT_TRUE(IsValidFqdn(fqdn)) << fqdn;
  }
}

TEST(IsValidFqdn, RejectsEmptyLabelsBadCharactersAndEdgeHyphens) {
  for (const char* fqdn :
       {"", ".", "a..b", ".example.com", "host.example.com.", "-host.example.com",
        "host-.example.com", "host.-example.com", "bad_host.example.com", "two words.com",
        "host:443", "host/x", "hôte.example.com", "*.example.com"}) {
    EXPECT_FALSE(IsValidFqdn(fqdn)) << fqdn;
  }
}

TEST(IsValidFqdn, RejectsALabelOver63AndANameOver253Characters) {
  EXPECT_FALSE(IsValidFqdn(std::string(64, 'a') + ".example.com"));
  const std::string name254 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(62, 'd');
  ASSERT_EQ(name254.size(), 254u);
  EXPECT_FALSE(IsValidFqdn(name254));
}

TEST(IsValidFqdn, RejectsAnEmbeddedNul) {
  EXPECT_FALSE(IsValidFqdn(std::string("host1") + '\0' + ".example.com"));
}

}  // namespace
}  // namespace certfleet::controller::enrollment
