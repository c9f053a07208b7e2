#include "controller/admin/admin_service.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/model/identity.h"
#include "common/model/join_token.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::controller::admin {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::LoadSeededControllerPki;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestPki;
using common::model::PeerIdentity;
using common::model::Role;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr absl::Duration kDay = absl::Hours(24);

// The roles the admin API asks for (controller/rpc/admin_api.cc).
constexpr Role kToList = Role::kViewer;
constexpr Role kToCreateTokens = Role::kOperator;

PeerIdentity Operator(Role role) {
  PeerIdentity peer;
  peer.kind = PeerIdentity::Kind::kOperator;
  peer.name = "someone";
  peer.role = role;
  return peer;
}

// --- Authorize ---

TEST(AdminServiceAuthorize, AnAgentIsDeniedEverythingWhateverItsRoleField) {
  PeerIdentity agent;
  agent.kind = PeerIdentity::Kind::kAgent;
  agent.name = "0a1b2c";
  for (Role field : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    agent.role = field;
    for (Role needed : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
      EXPECT_EQ(AdminService::Authorize(agent, needed).code(), absl::StatusCode::kPermissionDenied);
    }
  }
}

TEST(AdminServiceAuthorize, AViewerMayListButNotCreateTokens) {
  EXPECT_TRUE(AdminService::Authorize(Operator(Role::kViewer), kToList).ok());
  EXPECT_EQ(AdminService::Authorize(Operator(Role::kViewer), kToCreateTokens).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AdminService::Authorize(Operator(Role::kViewer), Role::kAdmin).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AdminServiceAuthorize, AnOperatorMayListAndCreateTokensButNotAdminister) {
  EXPECT_TRUE(AdminService::Authorize(Operator(Role::kOperator), kToList).ok());
  EXPECT_TRUE(AdminService::Authorize(Operator(Role::kOperator), kToCreateTokens).ok());
  EXPECT_EQ(AdminService::Authorize(Operator(Role::kOperator), Role::kAdmin).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AdminServiceAuthorize, AnAdminMayDoEverything) {
  for (Role needed : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    EXPECT_TRUE(AdminService::Authorize(Operator(Role::kAdmin), needed).ok());
  }
}

// --- The service over a real store ---

store::CertificateRecord Cert(char thumb, absl::Time not_after,
                              std::vector<std::string> problems = {},
                              std::vector<std::string> drift = {}) {
  store::CertificateRecord c;
  c.store = "My";
  c.location = std::string(1, thumb) + ".pem";
  c.info.thumbprint = std::string(40, thumb);
  c.info.sha256 = std::string(64, thumb);
  c.info.serial = "0A";
  c.info.not_before = kNow - 30 * kDay;
  c.info.not_after = not_after;
  c.problems = std::move(problems);
  c.drift = std::move(drift);
  return c;
}

class AdminServiceTest : public ::testing::Test {
 protected:
  AdminServiceTest() : ca_(TestPki::Create(kNow)), clock_(kNow) {}

  void SetUp() override {
    auto pki = LoadSeededControllerPki(dir_.path(), ca_, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto store = store::SqliteStore::Open({.path = dir_.path() + "/controller.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    fleet_ = std::make_unique<fleet::Fleet>(*store_, clock_);
    enrollment_ = std::make_unique<enrollment::EnrollmentService>(*store_, *pki_, clock_);
    admin_ = std::make_unique<AdminService>(*store_, *fleet_, *enrollment_, clock_);
  }

  // Two agents: a1 (host1) with A (ends in 10 days, EXPIRES_SOON) and B (ends in 200 days);
  // a2 (host2) with C (ended 2 days ago, EXPIRED, RENEWED_NOT_ACTIVE).
  void AddAgentsWithCertificates() {
    AddAgent("a1", "host1.example.com",
             {Cert('A', kNow + 10 * kDay, {"EXPIRES_SOON"}), Cert('B', kNow + 200 * kDay)});
    AddAgent("a2", "host2.example.com",
             {Cert('C', kNow - 2 * kDay, {"EXPIRED"}, {"RENEWED_NOT_ACTIVE"})});
  }

  void AddAgent(const std::string& id, const std::string& fqdn,
                const std::vector<store::CertificateRecord>& certs) {
    store::AgentRecord agent;
    agent.id = id;
    agent.fqdn = fqdn;
    agent.enrolled_at = kNow - kDay;
    ASSERT_TRUE(store_->CreateAgent(agent).ok());
    ASSERT_TRUE(store_->ReplaceInventory(id, 1, certs, {}, kNow).ok());
  }

  // "<thumbprint letter>@<fqdn>" of each listed certificate, in order.
  static std::vector<std::string> Summary(const std::vector<CertificateView>& views) {
    std::vector<std::string> out;
    for (const auto& v : views) {
      out.push_back(v.certificate.info.thumbprint.substr(0, 1) + "@" + v.fqdn);
    }
    return out;
  }

  std::vector<std::string> List(CertificateQuery query) {
    auto views = admin_->ListCertificates(query);
    EXPECT_TRUE(views.ok()) << views.status();
    return views.ok() ? Summary(*views) : std::vector<std::string>{"<error>"};
  }

  static CertificateQuery Query(std::string agent = "",
                                std::optional<absl::Duration> expiring_within = std::nullopt,
                                std::string code = "") {
    CertificateQuery query;
    query.agent = std::move(agent);
    query.expiring_within = expiring_within;
    query.code = std::move(code);
    return query;
  }

  TestPki ca_;
  FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<ca::ControllerPki> pki_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<fleet::Fleet> fleet_;
  std::unique_ptr<enrollment::EnrollmentService> enrollment_;
  std::unique_ptr<AdminService> admin_;
};

TEST_F(AdminServiceTest, CreateJoinTokenMakesATokenPinningThisController) {
  enrollment::CreateTokenRequest request;
  request.ttl = absl::Hours(2);
  auto created = admin_->CreateJoinToken(request);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->expires_at, kNow + absl::Hours(2));
  auto token = common::model::ParseJoinToken(created->token);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->ca_pin, pki_->RootPin());
}

TEST_F(AdminServiceTest, CreateJoinTokenPassesOnInvalidArgument) {
  enrollment::CreateTokenRequest request;
  request.ttl = absl::ZeroDuration();
  EXPECT_EQ(admin_->CreateJoinToken(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AdminServiceTest, ListAgentsShowsWhichAgentsAreConnected) {
  AddAgentsWithCertificates();
  class NullChannel final : public fleet::AgentChannel {
    void SendCommand(const common::model::Command&) override {}
    void SendCancel(absl::string_view) override {}
    void SendCommandAck(absl::string_view) override {}
    void Close(const absl::Status&) override {}
  };
  fleet_->Attach("a2", std::make_shared<NullChannel>());
  auto agents = admin_->ListAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->size(), 2u);
  EXPECT_EQ((*agents)[0].agent.id, "a1");
  EXPECT_FALSE((*agents)[0].connected);
  EXPECT_EQ((*agents)[1].agent.id, "a2");
  EXPECT_TRUE((*agents)[1].connected);
}

TEST_F(AdminServiceTest, AgentFqdnsMapsEveryAgentIdToItsFqdn) {
  AddAgentsWithCertificates();
  auto fqdns = admin_->AgentFqdns();
  ASSERT_TRUE(fqdns.ok()) << fqdns.status();
  EXPECT_EQ(*fqdns, (std::map<std::string, std::string>{{"a1", "host1.example.com"},
                                                        {"a2", "host2.example.com"}}));
}

TEST_F(AdminServiceTest, ListCertificatesWithoutAQueryListsEveryCertificateWithItsFqdn) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query()),
              ElementsAre("A@host1.example.com", "B@host1.example.com", "C@host2.example.com"));
}

TEST_F(AdminServiceTest, ListCertificatesWithNoAgentsIsEmpty) {
  EXPECT_THAT(List(Query()), IsEmpty());
}

TEST_F(AdminServiceTest, ListCertificatesByAgentIdListsOnlyThatAgents) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query("a1")), ElementsAre("A@host1.example.com", "B@host1.example.com"));
  EXPECT_THAT(List(Query("a2")), ElementsAre("C@host2.example.com"));
}

TEST_F(AdminServiceTest, ListCertificatesByFqdnInAnyCaseListsOnlyThatAgents) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query("host2.example.com")), ElementsAre("C@host2.example.com"));
  EXPECT_THAT(List(Query("HOST1.Example.com")),
              ElementsAre("A@host1.example.com", "B@host1.example.com"));
}

TEST_F(AdminServiceTest, ListCertificatesOfAnUnknownAgentIsNotFound) {
  AddAgentsWithCertificates();
  for (const char* agent : {"a9", "host9.example.com"}) {
    EXPECT_EQ(admin_->ListCertificates(Query(agent)).status().code(), absl::StatusCode::kNotFound)
        << agent;
  }
}

TEST_F(AdminServiceTest, ListCertificatesWithAnUnknownCodeIsInvalidArgument) {
  AddAgentsWithCertificates();
  for (const char* code : {"NOT_A_CODE", "expired", "EXPIRE"}) {
    EXPECT_EQ(admin_->ListCertificates(Query("", std::nullopt, code)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << code;
  }
}

TEST_F(AdminServiceTest, ListCertificatesByProblemOrDriftCodeListsExactMatchesOnly) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query("", std::nullopt, "EXPIRES_SOON")), ElementsAre("A@host1.example.com"));
  EXPECT_THAT(List(Query("", std::nullopt, "EXPIRED")), ElementsAre("C@host2.example.com"));
  EXPECT_THAT(List(Query("", std::nullopt, "RENEWED_NOT_ACTIVE")),
              ElementsAre("C@host2.example.com"));
  EXPECT_THAT(List(Query("", std::nullopt, "NO_PRIVATE_KEY")), IsEmpty());
}

TEST_F(AdminServiceTest, ListCertificatesExpiringWithinListsThoseEndingBeforeNowPlusThat) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query("", 30 * kDay)),
              ElementsAre("A@host1.example.com", "C@host2.example.com"));
  EXPECT_THAT(List(Query("", absl::ZeroDuration())), ElementsAre("C@host2.example.com"));
  EXPECT_THAT(List(Query("", 365 * kDay)),
              ElementsAre("A@host1.example.com", "B@host1.example.com", "C@host2.example.com"));
}

TEST_F(AdminServiceTest, ListCertificatesExpiringWithinIsMeasuredFromTheClocksNow) {
  AddAgentsWithCertificates();
  clock_.Advance(180 * kDay);
  EXPECT_THAT(List(Query("a1", 30 * kDay)),
              ElementsAre("A@host1.example.com", "B@host1.example.com"));
}

TEST_F(AdminServiceTest, ListCertificatesCombinesAgentWindowAndCode) {
  AddAgentsWithCertificates();
  EXPECT_THAT(List(Query("host1.example.com", 30 * kDay, "EXPIRES_SOON")),
              ElementsAre("A@host1.example.com"));
  EXPECT_THAT(List(Query("a2", 30 * kDay, "EXPIRES_SOON")), IsEmpty());
}

}  // namespace
}  // namespace certfleet::controller::admin
