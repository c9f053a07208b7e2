#include "tests/controller/store/store_conformance.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/model/certificate.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/model/renewal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace certfleet::controller::store {

std::string StoreImplementationName(const ::testing::TestParamInfo<StoreImplementation>& info) {
  return info.param.name;
}

void StoreConformanceTest::SetUp() {
  factory_ = GetParam().make_factory();
  ASSERT_NE(factory_, nullptr);
  absl::StatusOr<std::unique_ptr<Store>> store = factory_->NewStore();
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  factory_.reset();
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21
const absl::Duration kDay = absl::Hours(24);

// Labels with the bytes an encoding is most likely to mangle.
std::map<std::string, std::string> AwkwardLabels() {
  return {
      {"site", "paris"},
      {"a=b", "c,d;e"},
      {"multi\nline", "tab\there"},
      {"", "empty key"},
      {"empty value", ""},
      {std::string("nul\0byte", 8), "\xff\xfe not utf-8"},
      {"json", R"({"k": ["v"]})"},
      {"4:netstring,", "3:abc,"},
  };
}

JoinTokenRecord Token(const std::string& hash, absl::Time expires_at = kT0 + kDay) {
  JoinTokenRecord token;
  token.token_hash = hash;
  token.labels = {{"site", "paris"}, {"tier", "web"}};
  token.created_at = kT0 - absl::Hours(1);
  token.expires_at = expires_at;
  token.created_by = "alice";
  return token;
}

AgentRecord Agent(const std::string& id, const std::string& fqdn, absl::Time enrolled_at = kT0) {
  AgentRecord agent;
  agent.id = id;
  agent.fqdn = fqdn;
  agent.labels = {{"site", "paris"}};
  agent.platform = "windows";
  agent.version = "1.2.3";
  agent.enrolled_at = enrolled_at;
  agent.identity_serial = "0A1B";
  agent.identity_not_after = enrolled_at + 30 * kDay;
  return agent;
}

CertificateRecord Certificate(const std::string& store, const std::string& thumbprint,
                              absl::Time not_after, std::vector<std::string> problems = {},
                              std::vector<std::string> drift = {}) {
  CertificateRecord cert;
  cert.store = store;
  cert.location = "LocalMachine";
  cert.problems = std::move(problems);
  cert.drift = std::move(drift);
  common::model::CertificateInfo& info = cert.info;
  info.subject = "CN=" + thumbprint + ".example.com,O=Example";
  info.subject_cn = thumbprint + ".example.com";
  info.issuer = "CN=Example CA";
  info.dns_names = {thumbprint + ".example.com", "alias.example.com"};
  info.uris = {"spiffe://example.com/host"};
  info.serial = "01AB";
  info.channel_serial = "AB01";
  info.thumbprint = thumbprint;
  info.sha256 = "SHA256-" + thumbprint;
  info.not_before = not_after - 365 * kDay;
  info.not_after = not_after;
  info.key_algorithm = "RSA";
  info.key_bits = 2048;
  info.signature_hash = "SHA256";
  info.has_key_usage = true;
  info.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment;
  info.extended_key_usage = {std::string(common::model::kServerAuthOid),
                             std::string(common::model::kClientAuthOid)};
  info.is_ca = false;
  info.template_name = "SCOMAgent";
  info.has_private_key = true;
  return cert;
}

void ExpectSameToken(const JoinTokenRecord& actual, const JoinTokenRecord& expected) {
  EXPECT_EQ(actual.token_hash, expected.token_hash);
  EXPECT_EQ(actual.fqdn, expected.fqdn);
  EXPECT_EQ(actual.labels, expected.labels);
  EXPECT_EQ(actual.created_at, expected.created_at);
  EXPECT_EQ(actual.expires_at, expected.expires_at);
  EXPECT_EQ(actual.used_at, expected.used_at);
  EXPECT_EQ(actual.used_by_agent, expected.used_by_agent);
  EXPECT_EQ(actual.created_by, expected.created_by);
}

void ExpectSameAgent(const AgentRecord& actual, const AgentRecord& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.fqdn, expected.fqdn);
  EXPECT_EQ(actual.labels, expected.labels);
  EXPECT_EQ(actual.platform, expected.platform);
  EXPECT_EQ(actual.version, expected.version);
  EXPECT_EQ(actual.enrolled_at, expected.enrolled_at);
  EXPECT_EQ(actual.last_seen, expected.last_seen);
  EXPECT_EQ(actual.identity_serial, expected.identity_serial);
  EXPECT_EQ(actual.identity_not_after, expected.identity_not_after);
  EXPECT_EQ(actual.channel_serial, expected.channel_serial);
  EXPECT_EQ(actual.drift, expected.drift);
  EXPECT_EQ(actual.inventory_generation, expected.inventory_generation);
}

void ExpectSameCertificate(const CertificateRecord& actual, const CertificateRecord& expected) {
  SCOPED_TRACE(expected.Key());
  EXPECT_EQ(actual.agent_id, expected.agent_id);
  EXPECT_EQ(actual.store, expected.store);
  EXPECT_EQ(actual.location, expected.location);
  EXPECT_EQ(actual.problems, expected.problems);
  EXPECT_EQ(actual.bound, expected.bound);
  EXPECT_EQ(actual.drift, expected.drift);
  const common::model::CertificateInfo& a = actual.info;
  const common::model::CertificateInfo& e = expected.info;
  EXPECT_EQ(a.subject, e.subject);
  EXPECT_EQ(a.subject_cn, e.subject_cn);
  EXPECT_EQ(a.issuer, e.issuer);
  EXPECT_EQ(a.dns_names, e.dns_names);
  EXPECT_EQ(a.uris, e.uris);
  EXPECT_EQ(a.serial, e.serial);
  EXPECT_EQ(a.channel_serial, e.channel_serial);
  EXPECT_EQ(a.thumbprint, e.thumbprint);
  EXPECT_EQ(a.sha256, e.sha256);
  EXPECT_EQ(a.not_before, e.not_before);
  EXPECT_EQ(a.not_after, e.not_after);
  EXPECT_EQ(a.key_algorithm, e.key_algorithm);
  EXPECT_EQ(a.key_bits, e.key_bits);
  EXPECT_EQ(a.signature_hash, e.signature_hash);
  EXPECT_EQ(a.has_key_usage, e.has_key_usage);
  EXPECT_EQ(a.key_usage, e.key_usage);
  EXPECT_EQ(a.extended_key_usage, e.extended_key_usage);
  EXPECT_EQ(a.is_ca, e.is_ca);
  EXPECT_EQ(a.template_name, e.template_name);
  EXPECT_EQ(a.has_private_key, e.has_private_key);
}

std::vector<std::string> Keys(const std::vector<CertificateRecord>& certificates) {
  std::vector<std::string> keys;
  for (const CertificateRecord& cert : certificates) {
    keys.push_back(absl::StrCat(cert.agent_id, ":", cert.Key()));
  }
  return keys;
}

std::vector<std::string> Ids(const std::vector<AgentRecord>& agents) {
  std::vector<std::string> ids;
  for (const AgentRecord& agent : agents) ids.push_back(agent.id);
  return ids;
}

// --- Join tokens ---

TEST_P(StoreConformanceTest, ACreatedTokenIsConsumedOnceAndComesBackMarkedUsed) {
  JoinTokenRecord token = Token("hash-1");
  token.labels = AwkwardLabels();
  ASSERT_TRUE(store().CreateJoinToken(token).ok());

  absl::StatusOr<JoinTokenRecord> used =
      store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0);
  ASSERT_TRUE(used.ok()) << used.status();
  JoinTokenRecord expected = token;
  expected.used_at = kT0;
  expected.used_by_agent = "agent-1";
  ExpectSameToken(*used, expected);
}

TEST_P(StoreConformanceTest, CreatingATokenWithAnExistingHashIsAlreadyExists) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  absl::Status status = store().CreateJoinToken(Token("hash-1"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
}

TEST_P(StoreConformanceTest, ATokenWithAnEmptyHashIsInvalidArgument) {
  EXPECT_EQ(store().CreateJoinToken(Token("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ConsumeJoinToken("", "web1.example.com", "agent-1", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ConsumingWithAnEmptyAgentIdOrFqdnIsInvalidArgumentAndLeavesItUnused) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  EXPECT_EQ(store().ConsumeJoinToken("hash-1", "web1.example.com", "", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ConsumeJoinToken("hash-1", "", "agent-1", kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0).ok());
}

TEST_P(StoreConformanceTest, ConsumingAnUnknownTokenIsNotFound) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  absl::StatusOr<JoinTokenRecord> used =
      store().ConsumeJoinToken("hash-2", "web1.example.com", "agent-1", kT0);
  EXPECT_EQ(used.status().code(), absl::StatusCode::kNotFound) << used.status();
}

TEST_P(StoreConformanceTest, ConsumingAUsedTokenIsFailedPreconditionAlreadyUsed) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  ASSERT_TRUE(store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0).ok());
  absl::StatusOr<JoinTokenRecord> again =
      store().ConsumeJoinToken("hash-1", "web2.example.com", "agent-2", kT0 + absl::Minutes(1));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("already used"));
}

TEST_P(StoreConformanceTest, ATokenCreatedUsedCannotBeConsumed) {
  JoinTokenRecord token = Token("hash-1");
  token.used_at = kT0 - absl::Minutes(5);
  token.used_by_agent = "agent-0";
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  EXPECT_EQ(store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, ConsumingAnExpiredTokenIsFailedPreconditionAndLeavesItUnused) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", kT0 + kDay)).ok());
  for (absl::Time late : {kT0 + kDay, kT0 + 2 * kDay}) {
    absl::StatusOr<JoinTokenRecord> used =
        store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", late);
    EXPECT_EQ(used.status().code(), absl::StatusCode::kFailedPrecondition) << used.status();
    EXPECT_THAT(std::string(used.status().message()), HasSubstr("expired"));
  }
  // Not marked used: a consumer whose clock is earlier still gets it.
  EXPECT_TRUE(
      store()
          .ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0 + kDay - absl::Seconds(1))
          .ok());
}

TEST_P(StoreConformanceTest, ATokenBoundToAnotherFqdnIsPermissionDeniedAndStaysUnused) {
  JoinTokenRecord token = Token("hash-1");
  token.fqdn = "web1.example.com";
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  absl::StatusOr<JoinTokenRecord> wrong =
      store().ConsumeJoinToken("hash-1", "web2.example.com", "agent-2", kT0);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();

  absl::StatusOr<JoinTokenRecord> right =
      store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0);
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_EQ(right->used_by_agent, "agent-1");
  EXPECT_EQ(right->fqdn, std::optional<std::string>("web1.example.com"));
}

TEST_P(StoreConformanceTest, ATokenBoundToAnFqdnAcceptsItInAnyCase) {
  JoinTokenRecord token = Token("hash-1");
  token.fqdn = "Web1.Example.COM";
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  EXPECT_TRUE(store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0).ok());
}

TEST_P(StoreConformanceTest, ExactlyOneOfManyConcurrentConsumersGetsTheToken) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  constexpr int kThreads = 8;
  std::atomic<int> winners{0};
  std::atomic<int> already_used{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<JoinTokenRecord> used =
          store().ConsumeJoinToken("hash-1", "web1.example.com", absl::StrCat("agent-", i), kT0);
      if (used.ok()) ++winners;
      if (used.status().code() == absl::StatusCode::kFailedPrecondition) ++already_used;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
}

// --- Agents ---

TEST_P(StoreConformanceTest, ACreatedAgentComesBackWithEveryField) {
  AgentRecord agent = Agent("agent-1", "web1.example.com");
  agent.labels = AwkwardLabels();
  agent.last_seen = kT0 + absl::Microseconds(1'234'567);
  agent.channel_serial = "CAFE";
  agent.drift = {"NOT_BOUND", "RENEWED_NOT_ACTIVE"};
  agent.inventory_generation = std::numeric_limits<uint64_t>::max();
  ASSERT_TRUE(store().CreateAgent(agent).ok());

  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameAgent(*got, agent);
}

TEST_P(StoreConformanceTest, AnAgentNeverSeenHasNoLastSeen) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->last_seen, std::nullopt);
  EXPECT_EQ(got->inventory_generation, 0u);
}

TEST_P(StoreConformanceTest, CreatingAnAgentWithAnExistingIdIsAlreadyExists) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  absl::Status status = store().CreateAgent(Agent("agent-1", "web2.example.com"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_EQ(store().GetAgent("agent-1")->fqdn, "web1.example.com");
}

TEST_P(StoreConformanceTest, AnAgentWithoutIdOrFqdnIsInvalidArgument) {
  EXPECT_EQ(store().CreateAgent(Agent("", "web1.example.com")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().CreateAgent(Agent("agent-1", "")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().GetAgent("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*store().ListAgents(), IsEmpty());
}

TEST_P(StoreConformanceTest, GettingAnUnknownAgentIsNotFound) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  EXPECT_EQ(store().GetAgent("agent-2").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, AgentsAreListedByFqdnThenId) {
  ASSERT_TRUE(store().CreateAgent(Agent("c", "b.example.com")).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("a", "c.example.com")).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("d", "a.example.com")).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("b", "b.example.com")).ok());
  absl::StatusOr<std::vector<AgentRecord>> agents = store().ListAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_THAT(Ids(*agents), ElementsAre("d", "b", "c", "a"));
}

TEST_P(StoreConformanceTest, NoAgentsListEmpty) {
  absl::StatusOr<std::vector<AgentRecord>> agents = store().ListAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_THAT(*agents, IsEmpty());
}

TEST_P(StoreConformanceTest, FindAgentByFqdnIgnoresCase) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "Web1.Example.com")).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("agent-2", "web2.example.com")).ok());
  for (absl::string_view fqdn : {"web1.example.com", "WEB1.EXAMPLE.COM", "Web1.Example.com"}) {
    absl::StatusOr<AgentRecord> found = store().FindAgentByFqdn(fqdn);
    ASSERT_TRUE(found.ok()) << fqdn << ": " << found.status();
    EXPECT_EQ(found->id, "agent-1");
    EXPECT_EQ(found->fqdn, "Web1.Example.com");
  }
}

TEST_P(StoreConformanceTest, FindAgentByAnUnknownFqdnIsNotFound) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  EXPECT_EQ(store().FindAgentByFqdn("web1.example").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().FindAgentByFqdn("web1.example.com.au").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, FindAgentByFqdnReturnsTheMostRecentlyEnrolled) {
  ASSERT_TRUE(store().CreateAgent(Agent("old", "web1.example.com", kT0 - 10 * kDay)).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("new", "WEB1.example.com", kT0)).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("middle", "web1.example.com", kT0 - kDay)).ok());
  absl::StatusOr<AgentRecord> found = store().FindAgentByFqdn("web1.example.com");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, "new");
}

TEST_P(StoreConformanceTest, RecordAgentSeenUpdatesPlatformVersionAndLastSeen) {
  AgentRecord agent = Agent("agent-1", "web1.example.com");
  ASSERT_TRUE(store().CreateAgent(agent).ok());
  ASSERT_TRUE(store().RecordAgentSeen("agent-1", "linux", "2.0.0", kT0 + kDay).ok());
  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-1");
  ASSERT_TRUE(got.ok());
  agent.platform = "linux";
  agent.version = "2.0.0";
  agent.last_seen = kT0 + kDay;
  ExpectSameAgent(*got, agent);
}

TEST_P(StoreConformanceTest, RecordAgentSeenOfAnUnknownAgentIsNotFound) {
  absl::Status status = store().RecordAgentSeen("agent-1", "linux", "2.0.0", kT0);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store().RecordAgentSeen("", "linux", "2.0.0", kT0).code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Enrollment ---

TEST_P(StoreConformanceTest, EnrollAgentConsumesTheTokenAndCreatesTheAgent) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  AgentRecord agent = Agent("agent-1", "web1.example.com");
  absl::StatusOr<JoinTokenRecord> token = store().EnrollAgent("hash-1", agent, kT0);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->used_by_agent, "agent-1");
  EXPECT_EQ(token->used_at, std::optional<absl::Time>(kT0));
  EXPECT_EQ(token->labels, Token("hash-1").labels);

  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-1");
  ASSERT_TRUE(got.ok()) << got.status();
  agent.labels = {{"site", "paris"}, {"tier", "web"}};
  ExpectSameAgent(*got, agent);
  EXPECT_EQ(store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-9", kT0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, EnrollAgentMergesTheTokensLabelsOverTheAgents) {
  JoinTokenRecord token = Token("hash-1");
  token.labels = {{"site", "lyon"}, {"tier", "web"}};
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  AgentRecord agent = Agent("agent-1", "web1.example.com");
  agent.labels = {{"site", "paris"}, {"os", "windows"}};
  ASSERT_TRUE(store().EnrollAgent("hash-1", agent, kT0).ok());
  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->labels, (std::map<std::string, std::string>{
                             {"os", "windows"}, {"site", "lyon"}, {"tier", "web"}}));
}

TEST_P(StoreConformanceTest, EnrollingAnExistingAgentIdFailsAndLeavesTheTokenUnused) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-1", "old.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  absl::StatusOr<JoinTokenRecord> token =
      store().EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kAlreadyExists) << token.status();
  EXPECT_EQ(store().GetAgent("agent-1")->fqdn, "old.example.com");
  // The token was not consumed.
  EXPECT_TRUE(store().EnrollAgent("hash-1", Agent("agent-2", "web1.example.com"), kT0).ok());
}

TEST_P(StoreConformanceTest, EnrollingWithAUsedTokenCreatesNoAgent) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  ASSERT_TRUE(store().EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0).ok());
  absl::StatusOr<JoinTokenRecord> token =
      store().EnrollAgent("hash-1", Agent("agent-2", "web2.example.com"), kT0);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition) << token.status();
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("already used"));
  EXPECT_EQ(store().GetAgent("agent-2").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, EnrollingWithAnUnknownOrExpiredTokenCreatesNoAgent) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", kT0)).ok());
  EXPECT_EQ(store().EnrollAgent("nope", Agent("agent-1", "web1.example.com"), kT0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      store().EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(*store().ListAgents(), IsEmpty());
}

TEST_P(StoreConformanceTest, EnrollingWithATokenBoundToAnotherFqdnCreatesNoAgent) {
  JoinTokenRecord bound = Token("hash-1");
  bound.fqdn = "web1.example.com";
  ASSERT_TRUE(store().CreateJoinToken(bound).ok());
  absl::StatusOr<JoinTokenRecord> token =
      store().EnrollAgent("hash-1", Agent("agent-2", "web2.example.com"), kT0);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kPermissionDenied) << token.status();
  EXPECT_EQ(store().GetAgent("agent-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store().EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0).ok());
}

TEST_P(StoreConformanceTest, EnrollingAnInvalidAgentIsInvalidArgumentAndLeavesTheTokenUnused) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  EXPECT_EQ(store().EnrollAgent("hash-1", Agent("", "web1.example.com"), kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().EnrollAgent("", Agent("agent-1", "web1.example.com"), kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store().EnrollAgent("hash-1", Agent("agent-1", "web1.example.com"), kT0).ok());
}

TEST_P(StoreConformanceTest, ExactlyOneOfManyConcurrentEnrollmentsWithOneTokenSucceeds) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  constexpr int kThreads = 8;
  std::atomic<int> winners{0};
  std::atomic<int> already_used{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<JoinTokenRecord> token =
          store().EnrollAgent("hash-1", Agent(absl::StrCat("agent-", i), "web1.example.com"), kT0);
      if (token.ok()) ++winners;
      if (token.status().code() == absl::StatusCode::kFailedPrecondition) ++already_used;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(already_used.load(), kThreads - 1);
  absl::StatusOr<std::vector<AgentRecord>> agents = store().ListAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_EQ(agents->size(), 1u);
}

// --- Inventory ---

// Inventory tests start with two agents.
void AddTwoAgents(Store& store) {
  ASSERT_TRUE(store.CreateAgent(Agent("agent-1", "web1.example.com")).ok());
  ASSERT_TRUE(store.CreateAgent(Agent("agent-2", "web2.example.com")).ok());
}

std::vector<CertificateRecord> List(Store& store, CertificateFilter filter = {}) {
  absl::StatusOr<std::vector<CertificateRecord>> certificates = store.ListCertificates(filter);
  EXPECT_TRUE(certificates.ok()) << certificates.status();
  return certificates.ok() ? *certificates : std::vector<CertificateRecord>();
}

TEST_P(StoreConformanceTest, ReplaceInventoryStoresEveryFieldTheBindingAndTheGeneration) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CertificateRecord cert = Certificate("My", "AAAA", kT0 + 90 * kDay, {"EXPIRES_SOON"});
  cert.bound = true;
  cert.drift = {"RENEWED_NOT_ACTIVE"};
  cert.info.is_ca = true;
  cert.info.has_key_usage = false;
  cert.info.key_usage = 0xffff;
  cert.info.dns_names = {"a,b", "c\nd", ""};
  BindingRecord binding{"AB01", {"RENEWED_NOT_ACTIVE"}};
  ASSERT_TRUE(store().ReplaceInventory("agent-1", 7, {cert}, binding, kT0 + kDay).ok());

  std::vector<CertificateRecord> listed = List(store());
  ASSERT_EQ(listed.size(), 1u);
  cert.agent_id = "agent-1";
  ExpectSameCertificate(listed[0], cert);

  absl::StatusOr<AgentRecord> agent = store().GetAgent("agent-1");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->inventory_generation, 7u);
  EXPECT_EQ(agent->channel_serial, "AB01");
  EXPECT_THAT(agent->drift, ElementsAre("RENEWED_NOT_ACTIVE"));
  EXPECT_EQ(agent->last_seen, std::optional<absl::Time>(kT0 + kDay));
}

TEST_P(StoreConformanceTest, ReplaceInventoryDropsWhatTheNewInventoryLacks) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory(
                      "agent-1", 1,
                      {Certificate("My", "AAAA", kT0), Certificate("My", "BBBB", kT0)}, {}, kT0)
                  .ok());
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 2, {Certificate("Root", "CCCC", kT0)}, {}, kT0).ok());
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:Root/CCCC"));
  ASSERT_TRUE(store().ReplaceInventory("agent-1", 3, {}, {}, kT0).ok());
  EXPECT_THAT(List(store()), IsEmpty());
  EXPECT_EQ(store().GetAgent("agent-1")->inventory_generation, 3u);
}

TEST_P(StoreConformanceTest, ReplaceInventoryLeavesOtherAgentsAlone) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store().ReplaceInventory("agent-2", 1, {Certificate("My", "BBBB", kT0)}, {}, kT0).ok());
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  ASSERT_TRUE(store().ReplaceInventory("agent-1", 2, {}, {}, kT0).ok());
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-2:My/BBBB"));
}

TEST_P(StoreConformanceTest, TheSameThumbprintMayBeInSeveralStoresAndAgents) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory(
                      "agent-1", 1,
                      {Certificate("My", "AAAA", kT0), Certificate("CA", "AAAA", kT0)}, {}, kT0)
                  .ok());
  ASSERT_TRUE(
      store().ReplaceInventory("agent-2", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  EXPECT_THAT(Keys(List(store())),
              ElementsAre("agent-1:CA/AAAA", "agent-1:My/AAAA", "agent-2:My/AAAA"));
}

TEST_P(StoreConformanceTest, ReplaceInventoryOfAnUnknownAgentIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  absl::Status status =
      store().ReplaceInventory("agent-9", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(List(store()), IsEmpty());
}

TEST_P(StoreConformanceTest, AnInvalidInventoryIsInvalidArgumentAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  CertificateRecord other_agent = Certificate("My", "BBBB", kT0);
  other_agent.agent_id = "agent-2";
  const std::vector<std::vector<CertificateRecord>> invalid = {
      {Certificate("My", "", kT0)},
      {Certificate("", "BBBB", kT0)},
      {Certificate("My", "BB/BB", kT0)},
      {other_agent},
      {Certificate("My", "BBBB", kT0), Certificate("My", "BBBB", kT0 + kDay)},
  };
  for (const std::vector<CertificateRecord>& inventory : invalid) {
    SCOPED_TRACE(Keys(inventory).back());
    absl::Status status = store().ReplaceInventory("agent-1", 2, inventory, {"X", {}}, kT0);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
  EXPECT_EQ(store().ReplaceInventory("", 2, {}, {}, kT0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
  absl::StatusOr<AgentRecord> agent = store().GetAgent("agent-1");
  EXPECT_EQ(agent->inventory_generation, 1u);
  EXPECT_EQ(agent->channel_serial, "");
}

TEST_P(StoreConformanceTest, ACertificateMayNameItsAgent) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CertificateRecord cert = Certificate("My", "AAAA", kT0);
  cert.agent_id = "agent-1";
  ASSERT_TRUE(store().ReplaceInventory("agent-1", 1, {cert}, {}, kT0).ok());
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
}

TEST_P(StoreConformanceTest, ADeltaUpsertsChangedRowsAndDeletesRemovedKeys) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-1", 1,
                                    {Certificate("My", "AAAA", kT0), Certificate("My", "BBBB", kT0),
                                     Certificate("CA", "CCCC", kT0)},
                                    {"AAAA", {}}, kT0)
                  .ok());
  CertificateRecord changed = Certificate("My", "AAAA", kT0 + kDay, {"EXPIRED"});
  changed.bound = true;
  CertificateRecord added = Certificate("Root", "DDDD", kT0 + 2 * kDay);
  absl::Status status =
      store().ApplyInventoryDelta("agent-1", 1, 2, {changed, added}, {"My/BBBB", "CA/CCCC"},
                                  {"AAAA", {"NOT_BOUND"}}, kT0 + kDay);
  ASSERT_TRUE(status.ok()) << status;

  std::vector<CertificateRecord> listed = List(store());
  ASSERT_THAT(Keys(listed), ElementsAre("agent-1:My/AAAA", "agent-1:Root/DDDD"));
  changed.agent_id = "agent-1";
  added.agent_id = "agent-1";
  ExpectSameCertificate(listed[0], changed);
  ExpectSameCertificate(listed[1], added);
  absl::StatusOr<AgentRecord> agent = store().GetAgent("agent-1");
  EXPECT_EQ(agent->inventory_generation, 2u);
  EXPECT_THAT(agent->drift, ElementsAre("NOT_BOUND"));
  EXPECT_EQ(agent->last_seen, std::optional<absl::Time>(kT0 + kDay));
}

TEST_P(StoreConformanceTest, RemovingAKeyThatIsNotStoredIsHarmless) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  ASSERT_TRUE(
      store().ApplyInventoryDelta("agent-1", 1, 2, {}, {"My/ZZZZ", "CA/AAAA"}, {}, kT0).ok());
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
  EXPECT_EQ(store().GetAgent("agent-1")->inventory_generation, 2u);
}

TEST_P(StoreConformanceTest, ADeltaOnAnotherGenerationIsFailedPreconditionAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-1", 5, {Certificate("My", "AAAA", kT0)}, {"S", {}}, kT0)
                  .ok());
  for (uint64_t base : {uint64_t{4}, uint64_t{6}, uint64_t{0}}) {
    absl::Status status = store().ApplyInventoryDelta(
        "agent-1", base, 7, {Certificate("My", "BBBB", kT0)}, {"My/AAAA"}, {"T", {}}, kT0);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  }
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
  absl::StatusOr<AgentRecord> agent = store().GetAgent("agent-1");
  EXPECT_EQ(agent->inventory_generation, 5u);
  EXPECT_EQ(agent->channel_serial, "S");
}

TEST_P(StoreConformanceTest, ADeltaOnANewAgentIsBasedOnGenerationZero) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store()
          .ApplyInventoryDelta("agent-1", 0, 1, {Certificate("My", "AAAA", kT0)}, {}, {}, kT0)
          .ok());
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
}

TEST_P(StoreConformanceTest, ADeltaForAnUnknownAgentIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  absl::Status status =
      store().ApplyInventoryDelta("agent-9", 0, 1, {Certificate("My", "AAAA", kT0)}, {}, {}, kT0);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(List(store()), IsEmpty());
}

TEST_P(StoreConformanceTest, AnInvalidDeltaIsInvalidArgumentAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  for (const char* key : {"AAAA", "My/", "/AAAA", ""}) {
    absl::Status status = store().ApplyInventoryDelta(
        "agent-1", 1, 2, {Certificate("My", "BBBB", kT0)}, {key}, {}, kT0);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << key << ": " << status;
  }
  EXPECT_EQ(store()
                .ApplyInventoryDelta("agent-1", 1, 2, {Certificate("My", "", kT0)}, {}, {}, kT0)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ApplyInventoryDelta("", 1, 2, {}, {}, {}, kT0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(List(store())), ElementsAre("agent-1:My/AAAA"));
  EXPECT_EQ(store().GetAgent("agent-1")->inventory_generation, 1u);
}

// --- Listing certificates ---

TEST_P(StoreConformanceTest, CertificatesAreOrderedByAgentFqdnStoreAndNotAfter) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  // agent-0's FQDN sorts last although its id sorts first.
  ASSERT_TRUE(store().CreateAgent(Agent("agent-0", "web3.example.com")).ok());
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-2", 1,
                                    {Certificate("Root", "R1", kT0 + 3 * kDay),
                                     Certificate("My", "M2", kT0 + 2 * kDay),
                                     Certificate("My", "M1", kT0 + kDay)},
                                    {}, kT0)
                  .ok());
  ASSERT_TRUE(store().ReplaceInventory("agent-0", 1, {Certificate("CA", "C1", kT0)}, {}, kT0).ok());
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-1", 1,
                                    {Certificate("My", "X2", kT0 + 5 * kDay),
                                     Certificate("CA", "X1", kT0 + 9 * kDay)},
                                    {}, kT0)
                  .ok());
  EXPECT_THAT(Keys(List(store())),
              ElementsAre("agent-1:CA/X1", "agent-1:My/X2",                     // web1
                          "agent-2:My/M1", "agent-2:My/M2", "agent-2:Root/R1",  // web2
                          "agent-0:CA/C1"));                                    // web3
}

TEST_P(StoreConformanceTest, CertificatesFilterByAgent) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(
      store().ReplaceInventory("agent-1", 1, {Certificate("My", "AAAA", kT0)}, {}, kT0).ok());
  ASSERT_TRUE(
      store().ReplaceInventory("agent-2", 1, {Certificate("My", "BBBB", kT0)}, {}, kT0).ok());
  CertificateFilter filter;
  filter.agent_id = "agent-2";
  EXPECT_THAT(Keys(List(store(), filter)), ElementsAre("agent-2:My/BBBB"));
  filter.agent_id = "agent-9";
  EXPECT_THAT(List(store(), filter), IsEmpty());
}

TEST_P(StoreConformanceTest, CertificatesFilterByNotAfterStrictlyBefore) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory(
                      "agent-1", 1,
                      {Certificate("My", "EARLY", kT0 - absl::Microseconds(1)),
                       Certificate("My", "EXACT", kT0), Certificate("My", "LATE", kT0 + kDay)},
                      {}, kT0)
                  .ok());
  CertificateFilter filter;
  filter.not_after_before = kT0;
  EXPECT_THAT(Keys(List(store(), filter)), ElementsAre("agent-1:My/EARLY"));
  filter.not_after_before = absl::InfiniteFuture();
  EXPECT_EQ(List(store(), filter).size(), 3u);
}

TEST_P(StoreConformanceTest, CertificatesFilterByAnExactProblemOrDriftCode) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-1", 1,
                                    {Certificate("My", "SOON", kT0, {"EXPIRES_SOON"}),
                                     Certificate("My", "GONE", kT0, {"KEY_TOO_SMALL", "EXPIRED"}),
                                     Certificate("My", "DRIFT", kT0, {}, {"EXPIRED"}),
                                     Certificate("My", "PREFIX", kT0, {"EXPIRED_X", "XEXPIRED"}),
                                     Certificate("My", "CLEAN", kT0)},
                                    {}, kT0)
                  .ok());
  CertificateFilter filter;
  filter.code = "EXPIRED";
  EXPECT_THAT(Keys(List(store(), filter)), ElementsAre("agent-1:My/DRIFT", "agent-1:My/GONE"));
  filter.code = "EXPIRES_SOON";
  EXPECT_THAT(Keys(List(store(), filter)), ElementsAre("agent-1:My/SOON"));
  filter.code = "EXPIRE";
  EXPECT_THAT(List(store(), filter), IsEmpty());
  filter.code = "expired";
  EXPECT_THAT(List(store(), filter), IsEmpty());
}

TEST_P(StoreConformanceTest, CertificateFiltersCombine) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store()
                  .ReplaceInventory("agent-1", 1,
                                    {Certificate("My", "A1", kT0, {"EXPIRED"}),
                                     Certificate("My", "A2", kT0 + 10 * kDay, {"EXPIRED"}),
                                     Certificate("My", "A3", kT0)},
                                    {}, kT0)
                  .ok());
  ASSERT_TRUE(
      store()
          .ReplaceInventory("agent-2", 1, {Certificate("My", "B1", kT0, {"EXPIRED"})}, {}, kT0)
          .ok());
  CertificateFilter filter;
  filter.agent_id = "agent-1";
  filter.not_after_before = kT0 + kDay;
  filter.code = "EXPIRED";
  EXPECT_THAT(Keys(List(store(), filter)), ElementsAre("agent-1:My/A1"));
}

// --- Commands ---

namespace model = common::model;
using model::CommandState;

const absl::Duration kGrace = absl::Minutes(5);

CommandRecord Command(const std::string& id, const std::string& agent_id,
                      model::CommandPayload payload = model::ScanPayload{},
                      absl::Time created_at = kT0, absl::Time deadline = kT0 + absl::Hours(1)) {
  CommandRecord record;
  record.command.id = id;
  record.command.agent_id = agent_id;
  record.command.deadline = deadline;
  record.command.payload = std::move(payload);
  record.created_by = "alice";
  record.created_at = created_at;
  return record;
}

// A profile with every field away from its default, with bytes an encoding could mangle.
model::CertificateProfile AwkwardProfile() {
  model::CertificateProfile profile;
  profile.name = "scom-4096,1:x";
  profile.key_bits = 4096;
  profile.signature_hash = "SHA384";
  profile.extra_dns_names = {"scom.example.com", "ms01.example.com", "a,b"};
  profile.key_usage = common::model::kDigitalSignature | common::model::kKeyEncipherment | 0x80;
  profile.extended_key_usage = {std::string(common::model::kClientAuthOid), "1.2.3.4",
                                std::string(common::model::kServerAuthOid)};
  profile.validity = absl::Hours(24 * 90) + absl::Microseconds(7);
  profile.template_name = "SCOM Agent\n(v2)";
  return profile;
}

// A PFX-like file (binary, with NUL bytes) and its password.
model::ImportPayload SecretImport() {
  return model::ImportPayload{std::string("0\x82\x0a\x00\x02\x01\x03\xff\x00pfx,1:x", 16),
                              "correct horse battery staple"};
}

// Every field of `profile`, bytes escaped: equal exactly when the profiles are.
std::string DescribeProfile(const model::CertificateProfile& p) {
  auto list = [](const std::vector<std::string>& values) {
    std::string out = "[";
    for (const std::string& v : values) absl::StrAppend(&out, "'", absl::CHexEscape(v), "' ");
    return absl::StrCat(out, "]");
  };
  return absl::StrCat("name='", absl::CHexEscape(p.name), "' key=", p.key_algorithm, "/",
                      p.key_bits, " hash=", p.signature_hash, " sans=", list(p.extra_dns_names),
                      " key_usage=", p.key_usage, " eku=", list(p.extended_key_usage),
                      " validity=", absl::FormatDuration(p.validity), " template='",
                      absl::CHexEscape(p.template_name), "'");
}

// The kind and every field of `payload`, bytes escaped: equal exactly when the payloads are.
std::string Describe(const model::CommandPayload& payload) {
  std::string fields = std::visit(
      [](const auto& p) -> std::string {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, model::ImportPayload>) {
          return absl::StrCat("data='", absl::CHexEscape(p.data), "' password='",
                              absl::CHexEscape(p.password), "'");
        } else if constexpr (std::is_same_v<T, model::RebindPayload>) {
          return absl::StrCat("thumbprint='", p.thumbprint,
                              "' verify_timeout=", absl::FormatDuration(p.verify_timeout));
        } else if constexpr (std::is_same_v<T, model::TrustPayload>) {
          return absl::StrCat("data='", absl::CHexEscape(p.data), "'");
        } else if constexpr (std::is_same_v<T, model::ScanPayload>) {
          return "";
        } else if constexpr (std::is_same_v<T, model::RenewPayload>) {
          return DescribeProfile(p.profile);
        } else if constexpr (std::is_same_v<T, model::InstallPayload>) {
          return absl::StrCat("chain_pem='", absl::CHexEscape(p.chain_pem), "' bind=", p.bind,
                              " verify_timeout=", absl::FormatDuration(p.verify_timeout));
        } else {
          return absl::StrCat("thumbprint='", p.thumbprint, "'");
        }
      },
      payload);
  return absl::StrCat(model::CommandKindName(model::KindOf(payload)), "{", fields, "}");
}

std::string PasswordOf(const CommandRecord& record) {
  const auto* import = std::get_if<model::ImportPayload>(&record.command.payload);
  return import != nullptr ? import->password : "<not an import>";
}

void ExpectSameResult(const model::CommandResult& a, const model::CommandResult& e) {
  EXPECT_EQ(a.thumbprint, e.thumbprint);
  EXPECT_EQ(a.problems, e.problems);
  EXPECT_EQ(a.previous_channel_serial, e.previous_channel_serial);
  EXPECT_EQ(a.channel_serial, e.channel_serial);
  EXPECT_EQ(a.rolled_back, e.rolled_back);
  ASSERT_EQ(a.events.size(), e.events.size());
  for (size_t i = 0; i < e.events.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("event ", i));
    EXPECT_EQ(a.events[i].time, e.events[i].time);
    EXPECT_EQ(a.events[i].id, e.events[i].id);
    EXPECT_EQ(a.events[i].level, e.events[i].level);
    EXPECT_EQ(a.events[i].message, e.events[i].message);
  }
  EXPECT_EQ(a.detail, e.detail);
  EXPECT_EQ(a.csr_pem, e.csr_pem);
}

void ExpectSameOutcome(const std::optional<model::CommandOutcome>& actual,
                       const std::optional<model::CommandOutcome>& expected) {
  ASSERT_EQ(actual.has_value(), expected.has_value());
  if (!expected.has_value()) return;
  EXPECT_EQ(model::CommandStateName(actual->state), model::CommandStateName(expected->state));
  EXPECT_EQ(actual->code, expected->code);
  EXPECT_EQ(actual->error, expected->error);
  ExpectSameResult(actual->result, expected->result);
}

void ExpectSameCommand(const CommandRecord& actual, const CommandRecord& expected) {
  SCOPED_TRACE(absl::StrCat("command ", expected.command.id));
  EXPECT_EQ(actual.command.id, expected.command.id);
  EXPECT_EQ(actual.command.agent_id, expected.command.agent_id);
  EXPECT_EQ(actual.command.deadline, expected.command.deadline);
  EXPECT_EQ(Describe(actual.command.payload), Describe(expected.command.payload));
  EXPECT_EQ(model::CommandStateName(actual.state), model::CommandStateName(expected.state));
  EXPECT_EQ(actual.created_by, expected.created_by);
  EXPECT_EQ(actual.created_at, expected.created_at);
  EXPECT_EQ(actual.sent_at, expected.sent_at);
  EXPECT_EQ(actual.started_at, expected.started_at);
  EXPECT_EQ(actual.finished_at, expected.finished_at);
  EXPECT_EQ(actual.attempts, expected.attempts);
  EXPECT_EQ(actual.cancel_requested, expected.cancel_requested);
  ExpectSameOutcome(actual.outcome, expected.outcome);
}

std::vector<std::string> CommandIds(const std::vector<CommandRecord>& commands) {
  std::vector<std::string> ids;
  for (const CommandRecord& command : commands) ids.push_back(command.command.id);
  return ids;
}

CommandRecord Get(Store& store, const std::string& id) {
  absl::StatusOr<CommandRecord> command = store.GetCommand(id);
  EXPECT_TRUE(command.ok()) << command.status();
  return command.ok() ? *command : CommandRecord();
}

std::vector<CommandRecord> Pending(Store& store, const std::string& agent_id) {
  absl::StatusOr<std::vector<CommandRecord>> commands = store.PendingCommands(agent_id);
  EXPECT_TRUE(commands.ok()) << commands.status();
  return commands.ok() ? *commands : std::vector<CommandRecord>();
}

std::vector<CommandRecord> ListCommands(Store& store, CommandFilter filter = {}) {
  absl::StatusOr<std::vector<CommandRecord>> commands = store.ListCommands(filter);
  EXPECT_TRUE(commands.ok()) << commands.status();
  return commands.ok() ? *commands : std::vector<CommandRecord>();
}

model::CommandOutcome Outcome(CommandState state, absl::string_view detail = "done") {
  model::CommandOutcome outcome;
  outcome.state = state;
  outcome.code = state == CommandState::kSucceeded ? absl::StatusCode::kOk
                                                   : absl::StatusCode::kFailedPrecondition;
  outcome.error = state == CommandState::kSucceeded ? "" : "it went wrong";
  outcome.result.detail = std::string(detail);
  return outcome;
}

// The ways a command becomes final, each at `now`.
enum class FinalPath { kFinish, kCancel, kExpire };

std::string FinalPathName(FinalPath path) {
  switch (path) {
    case FinalPath::kFinish:
      return "FinishCommand";
    case FinalPath::kCancel:
      return "CancelCommand";
    case FinalPath::kExpire:
      return "ExpireCommands";
  }
  return "?";
}

// Makes the queued command `id` (deadline before `now`) final by `path`; returns the record the
// call returned.
CommandRecord MakeFinal(Store& store, const std::string& id, FinalPath path, absl::Time now) {
  switch (path) {
    case FinalPath::kFinish: {
      absl::StatusOr<CommandRecord> finished =
          store.FinishCommand(id, Outcome(CommandState::kSucceeded), now);
      EXPECT_TRUE(finished.ok()) << finished.status();
      return finished.ok() ? *finished : CommandRecord();
    }
    case FinalPath::kCancel: {
      absl::StatusOr<CommandRecord> cancelled = store.CancelCommand(id, now);
      EXPECT_TRUE(cancelled.ok()) << cancelled.status();
      return cancelled.ok() ? *cancelled : CommandRecord();
    }
    case FinalPath::kExpire: {
      absl::StatusOr<std::vector<CommandRecord>> expired = store.ExpireCommands(now, kGrace);
      EXPECT_TRUE(expired.ok()) << expired.status();
      if (!expired.ok()) return CommandRecord();
      EXPECT_THAT(CommandIds(*expired), ElementsAre(id));
      return expired->empty() ? CommandRecord() : expired->front();
    }
  }
  return CommandRecord();
}

const FinalPath kFinalPaths[] = {FinalPath::kFinish, FinalPath::kCancel, FinalPath::kExpire};

TEST_P(StoreConformanceTest, ACreatedCommandIsQueuedAndComesBackWithEveryField) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command =
      Command("cmd-1", "agent-1", model::RebindPayload{"AB01", absl::Seconds(90)},
              kT0 + absl::Microseconds(123'456), kT0 + absl::Hours(2));
  command.created_by = "controller";
  ASSERT_TRUE(store().CreateCommand(command).ok());
  CommandRecord got = Get(store(), "cmd-1");
  ExpectSameCommand(got, command);
  EXPECT_EQ(got.state, CommandState::kQueued);
  EXPECT_EQ(got.attempts, 0);
  EXPECT_FALSE(got.outcome.has_value());
}

TEST_P(StoreConformanceTest, ACreatedCommandStartsQueuedWhateverItsProgressFieldsHold) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command = Command("cmd-1", "agent-1");
  command.state = CommandState::kRunning;
  command.sent_at = kT0;
  command.started_at = kT0;
  command.finished_at = kT0;
  command.attempts = 3;
  command.cancel_requested = true;
  command.outcome = Outcome(CommandState::kSucceeded);
  ASSERT_TRUE(store().CreateCommand(command).ok());
  ExpectSameCommand(Get(store(), "cmd-1"), Command("cmd-1", "agent-1"));
}

TEST_P(StoreConformanceTest, EveryPayloadKindRoundTripsWithBinaryDataAndTimeouts) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  const std::string binary(
      "\x30\x82\x00\x00,3:abc,\n\xff\xfe\x00"
      "end",
      18);
  const std::vector<model::CommandPayload> payloads = {
      model::ScanPayload{},
      SecretImport(),
      model::ImportPayload{binary, std::string("pa\0ss,1:", 8)},
      model::ImportPayload{"-----BEGIN CERTIFICATE-----\n...", ""},
      model::RepairPayload{"0123456789ABCDEF0123456789ABCDEF01234567"},
      model::RebindPayload{"AB01", absl::Milliseconds(2500) + absl::Microseconds(7)},
      model::RebindPayload{"", absl::ZeroDuration()},
      model::RebindPayload{"AB01", absl::InfiniteDuration()},
      model::TrustPayload{binary},
      model::TrustPayload{""},
      model::RemovePayload{"CAFE"},
      model::RenewPayload{model::ScomProfile()},
      model::RenewPayload{AwkwardProfile()},
      model::InstallPayload{"-----BEGIN CERTIFICATE-----\nMIIB,3:x\n", true, absl::Seconds(60)},
      model::InstallPayload{binary, false, absl::Microseconds(1'500'001)},
      model::InstallPayload{"", true, absl::InfiniteDuration()},
  };
  for (size_t i = 0; i < payloads.size(); ++i) {
    SCOPED_TRACE(Describe(payloads[i]));
    CommandRecord command = Command(absl::StrCat("cmd-", i), "agent-1", payloads[i]);
    ASSERT_TRUE(store().CreateCommand(command).ok());
    ExpectSameCommand(Get(store(), command.command.id), command);
  }
  EXPECT_EQ(ListCommands(store()).size(), payloads.size());
}

TEST_P(StoreConformanceTest, CreatingACommandWithAnExistingIdIsAlreadyExistsAndKeepsTheFirst) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord first = Command("cmd-1", "agent-1", model::RemovePayload{"AAAA"});
  ASSERT_TRUE(store().CreateCommand(first).ok());
  absl::Status status =
      store().CreateCommand(Command("cmd-1", "agent-2", model::RemovePayload{"BBBB"}));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  ExpectSameCommand(Get(store(), "cmd-1"), first);
  EXPECT_THAT(Pending(store(), "agent-2"), IsEmpty());
}

TEST_P(StoreConformanceTest, CreatingACommandForAnUnknownAgentIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  absl::Status status = store().CreateCommand(Command("cmd-1", "agent-9"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store().GetCommand("cmd-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ListCommands(store()), IsEmpty());
}

TEST_P(StoreConformanceTest, CommandsWithEmptyIdsAreInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  EXPECT_EQ(store().CreateCommand(Command("", "agent-1")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().CreateCommand(Command("cmd-1", "")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ListCommands(store()), IsEmpty());
  EXPECT_EQ(store().GetCommand("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().PendingCommands("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().MarkCommandSent("", kT0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().MarkCommandRunning("", kT0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().FinishCommand("", Outcome(CommandState::kSucceeded), kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().CancelCommand("", kT0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, EveryCommandMethodOnAnUnknownIdIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("cmd-1", "agent-1")).ok());
  EXPECT_EQ(store().GetCommand("cmd-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().MarkCommandSent("cmd-2", kT0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().MarkCommandRunning("cmd-2", kT0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().FinishCommand("cmd-2", Outcome(CommandState::kSucceeded), kT0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store().CancelCommand("cmd-2", kT0).status().code(), absl::StatusCode::kNotFound);
  ExpectSameCommand(Get(store(), "cmd-1"), Command("cmd-1", "agent-1"));
}

TEST_P(StoreConformanceTest, MarkCommandSentMovesQueuedToSentAndCountsEverySend) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command = Command("cmd-1", "agent-1");
  ASSERT_TRUE(store().CreateCommand(command).ok());
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0 + absl::Seconds(1)).ok());
  command.state = CommandState::kSent;
  command.sent_at = kT0 + absl::Seconds(1);
  command.attempts = 1;
  ExpectSameCommand(Get(store(), "cmd-1"), command);

  // Resent after a reconnect.
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0 + absl::Microseconds(2'000'001)).ok());
  command.sent_at = kT0 + absl::Microseconds(2'000'001);
  command.attempts = 2;
  ExpectSameCommand(Get(store(), "cmd-1"), command);
}

TEST_P(StoreConformanceTest, MarkCommandSentLeavesARunningCommandRunning) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command = Command("cmd-1", "agent-1");
  ASSERT_TRUE(store().CreateCommand(command).ok());
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0 + absl::Seconds(1)).ok());
  ASSERT_TRUE(store().MarkCommandRunning("cmd-1", kT0 + absl::Seconds(2)).ok());
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0 + absl::Seconds(3)).ok());
  command.state = CommandState::kRunning;
  command.sent_at = kT0 + absl::Seconds(3);
  command.started_at = kT0 + absl::Seconds(2);
  command.attempts = 2;
  ExpectSameCommand(Get(store(), "cmd-1"), command);
}

TEST_P(StoreConformanceTest, MarkCommandRunningStartsAQueuedOrASentCommand) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("queued", "agent-1")).ok());
  ASSERT_TRUE(store().CreateCommand(Command("sent", "agent-1")).ok());
  ASSERT_TRUE(store().MarkCommandSent("sent", kT0).ok());
  for (const char* id : {"queued", "sent"}) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(store().MarkCommandRunning(id, kT0 + absl::Seconds(5)).ok());
    CommandRecord got = Get(store(), id);
    EXPECT_EQ(got.state, CommandState::kRunning);
    EXPECT_EQ(got.started_at, std::optional<absl::Time>(kT0 + absl::Seconds(5)));
  }
  EXPECT_EQ(Get(store(), "queued").attempts, 0);
  EXPECT_EQ(Get(store(), "sent").attempts, 1);
}

TEST_P(StoreConformanceTest, MarkCommandRunningOnARunningCommandChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("cmd-1", "agent-1")).ok());
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0).ok());
  ASSERT_TRUE(store().MarkCommandRunning("cmd-1", kT0 + absl::Seconds(1)).ok());
  CommandRecord before = Get(store(), "cmd-1");
  ASSERT_TRUE(store().MarkCommandRunning("cmd-1", kT0 + absl::Seconds(9)).ok());
  ExpectSameCommand(Get(store(), "cmd-1"), before);
}

TEST_P(StoreConformanceTest, AFinalCommandCannotBeSentStartedOrCancelledAndStaysAsItIs) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  for (FinalPath path : kFinalPaths) {
    SCOPED_TRACE(FinalPathName(path));
    const std::string id = absl::StrCat("cmd-", FinalPathName(path));
    ASSERT_TRUE(store().CreateCommand(Command(id, "agent-1", SecretImport())).ok());
    CommandRecord final_record = MakeFinal(store(), id, path, kT0 + absl::Hours(2));
    ASSERT_TRUE(model::IsFinal(final_record.state));

    absl::Status sent = store().MarkCommandSent(id, kT0 + absl::Hours(3));
    EXPECT_EQ(sent.code(), absl::StatusCode::kFailedPrecondition) << sent;
    absl::Status running = store().MarkCommandRunning(id, kT0 + absl::Hours(3));
    EXPECT_EQ(running.code(), absl::StatusCode::kFailedPrecondition) << running;
    absl::StatusOr<CommandRecord> cancelled = store().CancelCommand(id, kT0 + absl::Hours(3));
    EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kFailedPrecondition)
        << cancelled.status();
    absl::StatusOr<std::vector<CommandRecord>> expired =
        store().ExpireCommands(kT0 + 100 * kDay, kGrace);
    ASSERT_TRUE(expired.ok()) << expired.status();
    EXPECT_THAT(*expired, IsEmpty());
    ExpectSameCommand(Get(store(), id), final_record);
  }
}

TEST_P(StoreConformanceTest, FinishCommandStoresTheOutcomeAndReturnsTheRecordAsStored) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command =
      Command("cmd-1", "agent-1", model::RebindPayload{"NEW1", absl::Seconds(30)});
  ASSERT_TRUE(store().CreateCommand(command).ok());
  ASSERT_TRUE(store().MarkCommandSent("cmd-1", kT0 + absl::Seconds(1)).ok());
  ASSERT_TRUE(store().MarkCommandRunning("cmd-1", kT0 + absl::Seconds(2)).ok());

  model::CommandOutcome outcome;
  outcome.state = CommandState::kFailed;
  outcome.code = absl::StatusCode::kAborted;
  outcome.error = "HealthService did not log 20053; rolled back";
  outcome.result.thumbprint = "NEW1";
  outcome.result.problems = {"NO_PRIVATE_KEY", "", "a,b"};
  outcome.result.previous_channel_serial = "OLD1";
  outcome.result.channel_serial = "OLD1";
  outcome.result.rolled_back = true;
  outcome.result.events = {
      {kT0 + absl::Microseconds(3'000'001), 20053, "Information", "certificate loaded"},
      {kT0 + absl::Seconds(4), 21016, "Error",
       std::string("multi\nline, with ") + '\0' + " and 4:x,"},
      {kT0 + absl::Seconds(5), -1, "", ""},
  };
  outcome.result.detail = "rebind to NEW1 failed, OLD1 restored";
  outcome.result.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIC\n";
  const absl::Time now = kT0 + absl::Microseconds(6'000'007);
  absl::StatusOr<CommandRecord> finished = store().FinishCommand("cmd-1", outcome, now);
  ASSERT_TRUE(finished.ok()) << finished.status();

  command.state = CommandState::kFailed;
  command.sent_at = kT0 + absl::Seconds(1);
  command.started_at = kT0 + absl::Seconds(2);
  command.finished_at = now;
  command.attempts = 1;
  command.outcome = outcome;
  ExpectSameCommand(*finished, command);
  ExpectSameCommand(Get(store(), "cmd-1"), command);
}

TEST_P(StoreConformanceTest, FinishCommandTakesEveryFinalStateEvenForACommandNeverSent) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  for (CommandState state : {CommandState::kSucceeded, CommandState::kFailed,
                             CommandState::kCancelled, CommandState::kExpired}) {
    const std::string id = absl::StrCat("cmd-", model::CommandStateName(state));
    SCOPED_TRACE(id);
    ASSERT_TRUE(store().CreateCommand(Command(id, "agent-1")).ok());
    absl::StatusOr<CommandRecord> finished = store().FinishCommand(id, Outcome(state), kT0);
    ASSERT_TRUE(finished.ok()) << finished.status();
    EXPECT_EQ(finished->state, state);
    ASSERT_TRUE(finished->outcome.has_value());
    EXPECT_EQ(finished->outcome->state, state);
    EXPECT_EQ(Get(store(), id).state, state);
  }
}

TEST_P(StoreConformanceTest, FinishCommandWithAnOutcomeThatIsNotFinalIsInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  CommandRecord command = Command("cmd-1", "agent-1", SecretImport());
  ASSERT_TRUE(store().CreateCommand(command).ok());
  for (CommandState state : {CommandState::kQueued, CommandState::kSent, CommandState::kRunning}) {
    SCOPED_TRACE(model::CommandStateName(state));
    absl::StatusOr<CommandRecord> finished = store().FinishCommand("cmd-1", Outcome(state), kT0);
    EXPECT_EQ(finished.status().code(), absl::StatusCode::kInvalidArgument) << finished.status();
  }
  ExpectSameCommand(Get(store(), "cmd-1"), command);
}

TEST_P(StoreConformanceTest, FinishingAFinalCommandAgainReturnsTheStoredRecordUnchanged) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("cmd-1", "agent-1")).ok());
  absl::StatusOr<CommandRecord> first =
      store().FinishCommand("cmd-1", Outcome(CommandState::kSucceeded, "first"), kT0);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<CommandRecord> again = store().FinishCommand(
      "cmd-1", Outcome(CommandState::kFailed, "second"), kT0 + absl::Minutes(1));
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameCommand(*again, *first);
  ExpectSameCommand(Get(store(), "cmd-1"), *first);
  EXPECT_EQ(again->outcome->result.detail, "first");
}

TEST_P(StoreConformanceTest, ExactlyOneOfManyConcurrentFinishesTakesEffect) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("cmd-1", "agent-1", SecretImport())).ok());
  ASSERT_TRUE(store().MarkCommandRunning("cmd-1", kT0).ok());
  constexpr int kThreads = 8;
  std::vector<absl::StatusOr<CommandRecord>> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store().FinishCommand(
          "cmd-1",
          Outcome(i % 2 == 0 ? CommandState::kSucceeded : CommandState::kFailed,
                  absl::StrCat("report ", i)),
          kT0 + absl::Seconds(i + 1));
    });
  }
  for (std::thread& t : threads) t.join();

  CommandRecord stored = Get(store(), "cmd-1");
  ASSERT_TRUE(stored.outcome.has_value());
  int winners = 0;
  for (int i = 0; i < kThreads; ++i) {
    SCOPED_TRACE(absl::StrCat("thread ", i));
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    ExpectSameCommand(*results[i], stored);
    if (stored.outcome->result.detail == absl::StrCat("report ", i)) {
      ++winners;
      EXPECT_EQ(stored.finished_at, std::optional<absl::Time>(kT0 + absl::Seconds(i + 1)));
      EXPECT_EQ(stored.state, i % 2 == 0 ? CommandState::kSucceeded : CommandState::kFailed);
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(PasswordOf(stored), "");
}

TEST_P(StoreConformanceTest, CancellingAQueuedCommandCancelsItAtOnce) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("cmd-1", "agent-1")).ok());
  const absl::Time now = kT0 + absl::Microseconds(1);
  absl::StatusOr<CommandRecord> cancelled = store().CancelCommand("cmd-1", now);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, CommandState::kCancelled);
  EXPECT_EQ(cancelled->finished_at, std::optional<absl::Time>(now));
  ASSERT_TRUE(cancelled->outcome.has_value());
  EXPECT_EQ(cancelled->outcome->state, CommandState::kCancelled);
  EXPECT_EQ(cancelled->outcome->code, absl::StatusCode::kCancelled);
  ExpectSameCommand(Get(store(), "cmd-1"), *cancelled);
  EXPECT_THAT(Pending(store(), "agent-1"), IsEmpty());
}

TEST_P(StoreConformanceTest, CancellingASentOrRunningCommandOnlyRequestsIt) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("sent", "agent-1", SecretImport(), kT0)).ok());
  ASSERT_TRUE(
      store().CreateCommand(Command("running", "agent-1", SecretImport(), kT0 + kDay)).ok());
  ASSERT_TRUE(store().MarkCommandSent("sent", kT0).ok());
  ASSERT_TRUE(store().MarkCommandSent("running", kT0).ok());
  ASSERT_TRUE(store().MarkCommandRunning("running", kT0).ok());
  for (const char* id : {"sent", "running"}) {
    SCOPED_TRACE(id);
    CommandRecord expected = Get(store(), id);
    expected.cancel_requested = true;
    absl::StatusOr<CommandRecord> cancelled = store().CancelCommand(id, kT0 + absl::Seconds(1));
    ASSERT_TRUE(cancelled.ok()) << cancelled.status();
    ExpectSameCommand(*cancelled, expected);
    // Asking again changes nothing.
    cancelled = store().CancelCommand(id, kT0 + absl::Seconds(2));
    ASSERT_TRUE(cancelled.ok()) << cancelled.status();
    ExpectSameCommand(*cancelled, expected);
    ExpectSameCommand(Get(store(), id), expected);
    // Still to be sent on reconnect, with its password: the agent decides.
    EXPECT_EQ(PasswordOf(expected), SecretImport().password);
  }
  EXPECT_THAT(CommandIds(Pending(store(), "agent-1")), ElementsAre("sent", "running"));

  // The agent's report makes it final.
  absl::StatusOr<CommandRecord> finished =
      store().FinishCommand("running", Outcome(CommandState::kCancelled), kT0 + absl::Seconds(3));
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state, CommandState::kCancelled);
  EXPECT_TRUE(finished->cancel_requested);
}

TEST_P(StoreConformanceTest, PendingCommandsAreTheAgentsUnfinishedOnesOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  // Created out of order: "oldest first" follows created_at.
  ASSERT_TRUE(store().CreateCommand(Command("c3", "agent-1", {}, kT0 + absl::Seconds(3))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("c1", "agent-1", {}, kT0 + absl::Seconds(1))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("c4", "agent-1", {}, kT0 + absl::Seconds(4))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("c2", "agent-1", {}, kT0 + absl::Seconds(2))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("c5", "agent-1", {}, kT0 + absl::Seconds(5))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("c6", "agent-1", {}, kT0 + absl::Seconds(6))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("other", "agent-2", {}, kT0)).ok());
  ASSERT_TRUE(store().MarkCommandSent("c3", kT0 + kDay).ok());
  ASSERT_TRUE(store().MarkCommandRunning("c4", kT0 + kDay).ok());
  ASSERT_TRUE(store().FinishCommand("c2", Outcome(CommandState::kSucceeded), kT0 + kDay).ok());
  ASSERT_TRUE(store().CancelCommand("c5", kT0 + kDay).ok());
  ASSERT_TRUE(store().CancelCommand("c6", kT0 + kDay).ok());  // queued: cancelled at once

  std::vector<CommandRecord> pending = Pending(store(), "agent-1");
  EXPECT_THAT(CommandIds(pending), ElementsAre("c1", "c3", "c4"));
  EXPECT_THAT(CommandIds(Pending(store(), "agent-2")), ElementsAre("other"));
  EXPECT_THAT(Pending(store(), "agent-9"), IsEmpty());
}

TEST_P(StoreConformanceTest, ListCommandsFiltersByAgentAndState) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  ASSERT_TRUE(store().CreateCommand(Command("a1", "agent-1", {}, kT0 + absl::Seconds(1))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("b1", "agent-2", {}, kT0 + absl::Seconds(2))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("a2", "agent-1", {}, kT0 + absl::Seconds(3))).ok());
  ASSERT_TRUE(store().CreateCommand(Command("b2", "agent-2", {}, kT0 + absl::Seconds(4))).ok());
  ASSERT_TRUE(store().FinishCommand("a2", Outcome(CommandState::kFailed), kT0 + kDay).ok());
  ASSERT_TRUE(store().FinishCommand("b2", Outcome(CommandState::kFailed), kT0 + kDay).ok());

  EXPECT_THAT(CommandIds(ListCommands(store())), ElementsAre("a1", "b1", "a2", "b2"));
  CommandFilter filter;
  filter.agent_id = "agent-1";
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("a1", "a2"));
  filter.state = CommandState::kFailed;
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("a2"));
  filter.agent_id.reset();
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("a2", "b2"));
  filter.state = CommandState::kQueued;
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("a1", "b1"));
  filter.state = CommandState::kRunning;
  EXPECT_THAT(ListCommands(store(), filter), IsEmpty());
  filter.state.reset();
  filter.agent_id = "agent-9";
  EXPECT_THAT(ListCommands(store(), filter), IsEmpty());
}

TEST_P(StoreConformanceTest, ListCommandsReturnsTheNewestLimitOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  // Created out of order.
  for (int i : {3, 0, 4, 1, 5, 2}) {
    ASSERT_TRUE(store()
                    .CreateCommand(Command(absl::StrCat("c", i), i % 2 == 0 ? "agent-1" : "agent-2",
                                           {}, kT0 + absl::Microseconds(i)))
                    .ok());
  }
  CommandFilter filter;
  filter.limit = 3;
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("c3", "c4", "c5"));
  filter.limit = 1;
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("c5"));
  filter.limit = 6;
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)),
              ElementsAre("c0", "c1", "c2", "c3", "c4", "c5"));
  filter.limit = std::numeric_limits<size_t>::max();
  EXPECT_EQ(ListCommands(store(), filter).size(), 6u);
  filter.limit = 2;
  filter.agent_id = "agent-1";
  EXPECT_THAT(CommandIds(ListCommands(store(), filter)), ElementsAre("c2", "c4"));
}

TEST_P(StoreConformanceTest, ListingCommandsWithLimitZeroIsInvalidArgument) {
  CommandFilter filter;
  filter.limit = 0;
  EXPECT_EQ(store().ListCommands(filter).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ExpireCommandsExpiresQueuedAndSentCommandsStrictlyPastTheirDeadline) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  const absl::Time now = kT0 + kDay;
  const absl::Time just_before = now - absl::Microseconds(1);
  ASSERT_TRUE(store().CreateCommand(Command("queued-late", "agent-1", {}, kT0, just_before)).ok());
  ASSERT_TRUE(store().CreateCommand(Command("queued-on-time", "agent-1", {}, kT0, now)).ok());
  ASSERT_TRUE(store().CreateCommand(Command("sent-late", "agent-2", {}, kT0, just_before)).ok());
  ASSERT_TRUE(store().CreateCommand(Command("sent-on-time", "agent-2", {}, kT0, now)).ok());
  ASSERT_TRUE(store().CreateCommand(Command("done", "agent-1", {}, kT0, kT0)).ok());
  ASSERT_TRUE(store()
                  .CreateCommand(Command("forever", "agent-1", {}, kT0 + absl::Microseconds(1),
                                         absl::InfiniteFuture()))
                  .ok());
  ASSERT_TRUE(store().MarkCommandSent("sent-late", kT0).ok());
  ASSERT_TRUE(store().MarkCommandSent("sent-on-time", kT0).ok());
  ASSERT_TRUE(store().FinishCommand("done", Outcome(CommandState::kSucceeded), kT0).ok());

  absl::StatusOr<std::vector<CommandRecord>> expired = store().ExpireCommands(now, kGrace);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(CommandIds(*expired), UnorderedElementsAre("queued-late", "sent-late"));
  for (const CommandRecord& command : *expired) {
    SCOPED_TRACE(command.command.id);
    EXPECT_EQ(command.state, CommandState::kExpired);
    EXPECT_EQ(command.finished_at, std::optional<absl::Time>(now));
    ASSERT_TRUE(command.outcome.has_value());
    EXPECT_EQ(command.outcome->state, CommandState::kExpired);
    EXPECT_EQ(command.outcome->code, absl::StatusCode::kDeadlineExceeded);
    ExpectSameCommand(Get(store(), command.command.id), command);
  }
  EXPECT_EQ(Get(store(), "sent-late").attempts, 1);
  EXPECT_EQ(Get(store(), "queued-on-time").state, CommandState::kQueued);
  EXPECT_EQ(Get(store(), "sent-on-time").state, CommandState::kSent);
  EXPECT_EQ(Get(store(), "done").state, CommandState::kSucceeded);
  EXPECT_THAT(CommandIds(Pending(store(), "agent-1")), ElementsAre("queued-on-time", "forever"));

  // Expired ones are final: a second sweep finds nothing new, and a late report changes nothing.
  expired = store().ExpireCommands(now, kGrace);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(*expired, IsEmpty());
  absl::StatusOr<CommandRecord> late =
      store().FinishCommand("sent-late", Outcome(CommandState::kSucceeded), now);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->state, CommandState::kExpired);
}

TEST_P(StoreConformanceTest, ExpireCommandsGivesRunningCommandsTheGrace) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  const absl::Time now = kT0 + kDay;
  const std::pair<const char*, absl::Time> running[] = {
      {"within-grace", now - absl::Minutes(1)},
      {"at-grace", now - kGrace},
      {"past-grace", now - kGrace - absl::Microseconds(1)},
  };
  for (const auto& [id, deadline] : running) {
    ASSERT_TRUE(store().CreateCommand(Command(id, "agent-1", {}, kT0, deadline)).ok());
    ASSERT_TRUE(store().MarkCommandSent(id, kT0).ok());
    ASSERT_TRUE(store().MarkCommandRunning(id, kT0).ok());
  }
  absl::StatusOr<std::vector<CommandRecord>> expired = store().ExpireCommands(now, kGrace);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(CommandIds(*expired), ElementsAre("past-grace"));
  EXPECT_EQ(Get(store(), "within-grace").state, CommandState::kRunning);
  EXPECT_EQ(Get(store(), "at-grace").state, CommandState::kRunning);

  // Without grace, both are past their deadline.
  expired = store().ExpireCommands(now, absl::ZeroDuration());
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(CommandIds(*expired), UnorderedElementsAre("within-grace", "at-grace"));
}

TEST_P(StoreConformanceTest, ExpiringWithNothingDueReturnsNothing) {
  absl::StatusOr<std::vector<CommandRecord>> expired = store().ExpireCommands(kT0, kGrace);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_THAT(*expired, IsEmpty());
}

TEST_P(StoreConformanceTest, AnImportsSecretsAreKeptUntilFinalAndScrubbedOnEveryFinalPath) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  for (FinalPath path : kFinalPaths) {
    SCOPED_TRACE(FinalPathName(path));
    const std::string id = absl::StrCat("import-", FinalPathName(path));
    ASSERT_TRUE(
        store().CreateCommand(Command(id, "agent-1", SecretImport(), kT0, kT0 + kDay)).ok());
    // Still needed while the command may be (re)sent.
    EXPECT_EQ(PasswordOf(Get(store(), id)), SecretImport().password);
    EXPECT_EQ(PasswordOf(Pending(store(), "agent-1").front()), SecretImport().password);

    CommandRecord final_record = MakeFinal(store(), id, path, kT0 + 2 * kDay);
    ASSERT_TRUE(model::IsFinal(final_record.state));
    EXPECT_EQ(PasswordOf(final_record), "");
    CommandRecord got = Get(store(), id);
    EXPECT_EQ(PasswordOf(got), "");
    // The file goes too: a PEM may carry an unencrypted private key.
    EXPECT_EQ(std::get<model::ImportPayload>(got.command.payload).data, "");
    for (const CommandRecord& listed : ListCommands(store())) {
      if (listed.command.id == id) {
        EXPECT_EQ(PasswordOf(listed), "");
      }
    }
  }
}

// --- Issuance log ---

IssuanceRecord Issuance(const std::string& serial, const std::string& renewal_id,
                        absl::Time issued_at) {
  IssuanceRecord issuance;
  issuance.serial = serial;
  issuance.issuer = "builtin";
  issuance.renewal_id = renewal_id;
  issuance.agent_id = "agent-1";
  issuance.fqdn = "web1.example.com";
  issuance.thumbprint = "TP-" + serial;
  issuance.not_before = issued_at - absl::Minutes(5);
  issuance.not_after = issued_at + 365 * kDay;
  issuance.issued_at = issued_at;
  issuance.certificate_pem = "-----BEGIN CERTIFICATE-----\n" + serial + "\n";
  return issuance;
}

void ExpectSameIssuance(const IssuanceRecord& actual, const IssuanceRecord& expected) {
  SCOPED_TRACE(absl::StrCat("issuance ", expected.serial));
  EXPECT_EQ(actual.serial, expected.serial);
  EXPECT_EQ(actual.issuer, expected.issuer);
  EXPECT_EQ(actual.renewal_id, expected.renewal_id);
  EXPECT_EQ(actual.agent_id, expected.agent_id);
  EXPECT_EQ(actual.fqdn, expected.fqdn);
  EXPECT_EQ(actual.thumbprint, expected.thumbprint);
  EXPECT_EQ(actual.not_before, expected.not_before);
  EXPECT_EQ(actual.not_after, expected.not_after);
  EXPECT_EQ(actual.issued_at, expected.issued_at);
  EXPECT_EQ(actual.certificate_pem, expected.certificate_pem);
}

std::vector<IssuanceRecord> Issuances(Store& store, const std::string& renewal_id) {
  absl::StatusOr<std::vector<IssuanceRecord>> issuances = store.ListIssuances(renewal_id);
  EXPECT_TRUE(issuances.ok()) << issuances.status();
  return issuances.ok() ? *issuances : std::vector<IssuanceRecord>();
}

std::vector<std::string> Serials(const std::vector<IssuanceRecord>& issuances) {
  std::vector<std::string> serials;
  for (const IssuanceRecord& issuance : issuances) serials.push_back(issuance.serial);
  return serials;
}

TEST_P(StoreConformanceTest, ARecordedIssuanceComesBackWithEveryField) {
  IssuanceRecord issuance = Issuance("01AB", "renewal-1", kT0 + absl::Microseconds(123'457));
  issuance.not_after = absl::InfiniteFuture();
  issuance.certificate_pem = std::string("PEM\0,3:x,\n", 10);
  ASSERT_TRUE(store().RecordIssuance(issuance).ok());
  std::vector<IssuanceRecord> listed = Issuances(store(), "renewal-1");
  ASSERT_EQ(listed.size(), 1u);
  ExpectSameIssuance(listed[0], issuance);
}

TEST_P(StoreConformanceTest, IssuancesAreListedPerRenewalOldestFirst) {
  // Recorded out of order: "oldest first" follows issued_at.
  ASSERT_TRUE(store().RecordIssuance(Issuance("03", "renewal-1", kT0 + absl::Seconds(3))).ok());
  ASSERT_TRUE(store().RecordIssuance(Issuance("01", "renewal-1", kT0 + absl::Seconds(1))).ok());
  ASSERT_TRUE(store().RecordIssuance(Issuance("99", "renewal-2", kT0)).ok());
  ASSERT_TRUE(store().RecordIssuance(Issuance("02", "renewal-1", kT0 + absl::Seconds(2))).ok());
  EXPECT_THAT(Serials(Issuances(store(), "renewal-1")), ElementsAre("01", "02", "03"));
  EXPECT_THAT(Serials(Issuances(store(), "renewal-2")), ElementsAre("99"));
  EXPECT_THAT(Issuances(store(), "renewal-9"), IsEmpty());
}

TEST_P(StoreConformanceTest, RecordingASerialTwiceIsAlreadyExistsAndKeepsTheFirst) {
  IssuanceRecord first = Issuance("0A0B", "renewal-1", kT0);
  ASSERT_TRUE(store().RecordIssuance(first).ok());
  IssuanceRecord again = Issuance("0A0B", "renewal-2", kT0 + kDay);
  again.issuer = "manual";
  absl::Status status = store().RecordIssuance(again);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  std::vector<IssuanceRecord> listed = Issuances(store(), "renewal-1");
  ASSERT_EQ(listed.size(), 1u);
  ExpectSameIssuance(listed[0], first);
  EXPECT_THAT(Issuances(store(), "renewal-2"), IsEmpty());
}

TEST_P(StoreConformanceTest, AnIssuanceWithAnEmptySerialIsInvalidArgument) {
  absl::Status status = store().RecordIssuance(Issuance("", "renewal-1", kT0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Issuances(store(), "renewal-1"), IsEmpty());
  EXPECT_EQ(store().ListIssuances("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, AnIssuanceIsRecordedWhateverBecomesOfItsAgent) {
  // The log is a record of what was signed: it needs no agent row.
  IssuanceRecord issuance = Issuance("0C", "renewal-1", kT0);
  issuance.agent_id = "agent-9";
  ASSERT_TRUE(store().RecordIssuance(issuance).ok());
  EXPECT_THAT(Serials(Issuances(store(), "renewal-1")), ElementsAre("0C"));
}

// --- Approval queue ---

using model::ApprovalState;

ApprovalRequestRecord Approval(const std::string& id, absl::Time created_at = kT0) {
  ApprovalRequestRecord request;
  request.id = id;
  request.issuer = "manual";
  request.renewal_id = "renewal-" + id;
  request.agent_id = "agent-1";
  request.fqdn = "web1.example.com";
  request.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + id + "\n";
  request.profile_name = "scom";
  request.created_at = created_at;
  return request;
}

void ExpectSameApproval(const ApprovalRequestRecord& actual,
                        const ApprovalRequestRecord& expected) {
  SCOPED_TRACE(absl::StrCat("approval request ", expected.id));
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.issuer, expected.issuer);
  EXPECT_EQ(actual.renewal_id, expected.renewal_id);
  EXPECT_EQ(actual.agent_id, expected.agent_id);
  EXPECT_EQ(actual.fqdn, expected.fqdn);
  EXPECT_EQ(actual.csr_pem, expected.csr_pem);
  EXPECT_EQ(actual.profile_name, expected.profile_name);
  EXPECT_EQ(model::ApprovalStateName(actual.state), model::ApprovalStateName(expected.state));
  EXPECT_EQ(actual.decided_by, expected.decided_by);
  EXPECT_EQ(actual.reason, expected.reason);
  EXPECT_EQ(actual.chain_pem, expected.chain_pem);
  EXPECT_EQ(actual.created_at, expected.created_at);
  EXPECT_EQ(actual.decided_at, expected.decided_at);
}

ApprovalRequestRecord GetApproval(Store& store, const std::string& id) {
  absl::StatusOr<ApprovalRequestRecord> request = store.GetApprovalRequest(id);
  EXPECT_TRUE(request.ok()) << request.status();
  return request.ok() ? *request : ApprovalRequestRecord();
}

std::vector<std::string> ApprovalIds(Store& store, std::optional<ApprovalState> state) {
  absl::StatusOr<std::vector<ApprovalRequestRecord>> requests = store.ListApprovalRequests(state);
  EXPECT_TRUE(requests.ok()) << requests.status();
  std::vector<std::string> ids;
  if (requests.ok()) {
    for (const ApprovalRequestRecord& request : *requests) ids.push_back(request.id);
  }
  return ids;
}

// `request` decided by `officer`: approved with a chain, or denied with a reason.
ApprovalRequestRecord Decided(ApprovalRequestRecord request, ApprovalState state,
                              const std::string& officer, absl::Time at) {
  request.state = state;
  request.decided_by = officer;
  request.decided_at = at;
  if (state == ApprovalState::kDenied) {
    request.reason = "denied by " + officer;
  } else {
    request.chain_pem = "-----BEGIN CERTIFICATE-----\nsigned for " + officer + "\n";
  }
  return request;
}

TEST_P(StoreConformanceTest, ACreatedApprovalRequestComesBackWithEveryField) {
  ApprovalRequestRecord pending = Approval("req-1", kT0 + absl::Microseconds(1));
  pending.csr_pem = std::string("CSR\0,2:xy,\n", 11);
  ASSERT_TRUE(store().CreateApprovalRequest(pending).ok());
  ExpectSameApproval(GetApproval(store(), "req-1"), pending);
  EXPECT_FALSE(GetApproval(store(), "req-1").decided_at.has_value());

  ApprovalRequestRecord decided =
      Decided(Approval("req-2"), ApprovalState::kDenied, "carol", kT0 + kDay);
  ASSERT_TRUE(store().CreateApprovalRequest(decided).ok());
  ExpectSameApproval(GetApproval(store(), "req-2"), decided);
}

TEST_P(StoreConformanceTest, CreatingAnApprovalRequestWithAnExistingIdIsAlreadyExists) {
  ApprovalRequestRecord first = Approval("req-1");
  ASSERT_TRUE(store().CreateApprovalRequest(first).ok());
  ApprovalRequestRecord again = Approval("req-1", kT0 + kDay);
  again.fqdn = "web2.example.com";
  absl::Status status = store().CreateApprovalRequest(again);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  ExpectSameApproval(GetApproval(store(), "req-1"), first);
}

TEST_P(StoreConformanceTest, ApprovalRequestsWithAnEmptyIdAreInvalidArgument) {
  EXPECT_EQ(store().CreateApprovalRequest(Approval("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ApprovalIds(store(), std::nullopt), IsEmpty());
  EXPECT_EQ(store().GetApprovalRequest("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().UpdateApprovalRequest(Approval(""), ApprovalState::kPending).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, GettingOrUpdatingAnUnknownApprovalRequestIsNotFound) {
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("req-1")).ok());
  EXPECT_EQ(store().GetApprovalRequest("req-2").status().code(), absl::StatusCode::kNotFound);
  absl::Status status = store().UpdateApprovalRequest(
      Decided(Approval("req-2"), ApprovalState::kApproved, "alice", kT0), ApprovalState::kPending);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store().GetApprovalRequest("req-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ApprovalIds(store(), std::nullopt), ElementsAre("req-1"));
}

TEST_P(StoreConformanceTest, ApprovalRequestsAreListedOldestFirstAndFilterByState) {
  // Created out of order: "oldest first" follows created_at.
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("r3", kT0 + absl::Seconds(3))).ok());
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("r1", kT0 + absl::Seconds(1))).ok());
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("r4", kT0 + absl::Seconds(4))).ok());
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("r2", kT0 + absl::Seconds(2))).ok());
  ASSERT_TRUE(store()
                  .UpdateApprovalRequest(Decided(Approval("r3", kT0 + absl::Seconds(3)),
                                                 ApprovalState::kDenied, "alice", kT0 + kDay),
                                         ApprovalState::kPending)
                  .ok());
  ASSERT_TRUE(store()
                  .UpdateApprovalRequest(Decided(Approval("r1", kT0 + absl::Seconds(1)),
                                                 ApprovalState::kApproved, "alice", kT0 + kDay),
                                         ApprovalState::kPending)
                  .ok());

  EXPECT_THAT(ApprovalIds(store(), std::nullopt), ElementsAre("r1", "r2", "r3", "r4"));
  EXPECT_THAT(ApprovalIds(store(), ApprovalState::kPending), ElementsAre("r2", "r4"));
  EXPECT_THAT(ApprovalIds(store(), ApprovalState::kApproved), ElementsAre("r1"));
  EXPECT_THAT(ApprovalIds(store(), ApprovalState::kDenied), ElementsAre("r3"));
  EXPECT_THAT(ApprovalIds(store(), ApprovalState::kFulfilled), IsEmpty());
}

TEST_P(StoreConformanceTest, UpdatingAnApprovalRequestInTheExpectedStateReplacesIt) {
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("req-1")).ok());
  ApprovalRequestRecord approved = Decided(Approval("req-1"), ApprovalState::kApproved, "alice",
                                           kT0 + absl::Microseconds(86'400'000'001));
  approved.reason = "ticket CHG-42";
  ASSERT_TRUE(store().UpdateApprovalRequest(approved, ApprovalState::kPending).ok());
  ExpectSameApproval(GetApproval(store(), "req-1"), approved);

  // Signed elsewhere after all: the chain an officer pasted in.
  ApprovalRequestRecord fulfilled = approved;
  fulfilled.state = ApprovalState::kFulfilled;
  fulfilled.chain_pem = "-----BEGIN CERTIFICATE-----\nleaf\n-----BEGIN CERTIFICATE-----\nca\n";
  ASSERT_TRUE(store().UpdateApprovalRequest(fulfilled, ApprovalState::kApproved).ok());
  ExpectSameApproval(GetApproval(store(), "req-1"), fulfilled);
}

TEST_P(StoreConformanceTest, UpdatingAnApprovalRequestInAnotherStateIsFailedPreconditionNamingIt) {
  ASSERT_TRUE(store().CreateApprovalRequest(Approval("req-1")).ok());
  ApprovalRequestRecord denied = Decided(Approval("req-1"), ApprovalState::kDenied, "bob", kT0);
  ASSERT_TRUE(store().UpdateApprovalRequest(denied, ApprovalState::kPending).ok());

  for (ApprovalState expected :
       {ApprovalState::kPending, ApprovalState::kApproved, ApprovalState::kFulfilled}) {
    SCOPED_TRACE(model::ApprovalStateName(expected));
    absl::Status status = store().UpdateApprovalRequest(
        Decided(Approval("req-1"), ApprovalState::kApproved, "alice", kT0 + kDay), expected);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("denied"));
  }
  ExpectSameApproval(GetApproval(store(), "req-1"), denied);
}

TEST_P(StoreConformanceTest, OfTwoOfficersDecidingAtOnceExactlyOneWinsAndTheOtherSeesTheDecision) {
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = absl::StrCat("req-", round);
    SCOPED_TRACE(id);
    ASSERT_TRUE(store().CreateApprovalRequest(Approval(id)).ok());
    const ApprovalRequestRecord decisions[2] = {
        Decided(Approval(id), ApprovalState::kApproved, "alice", kT0 + absl::Seconds(1)),
        Decided(Approval(id), ApprovalState::kDenied, "bob", kT0 + absl::Seconds(2)),
    };
    absl::Status results[2];
    std::vector<std::thread> officers;
    for (int i = 0; i < 2; ++i) {
      officers.emplace_back([&, i] {
        results[i] = store().UpdateApprovalRequest(decisions[i], ApprovalState::kPending);
      });
    }
    for (std::thread& t : officers) t.join();

    ASSERT_NE(results[0].ok(), results[1].ok()) << results[0] << " / " << results[1];
    const int winner = results[0].ok() ? 0 : 1;
    const absl::Status& lost = results[1 - winner];
    EXPECT_EQ(lost.code(), absl::StatusCode::kFailedPrecondition) << lost;
    EXPECT_THAT(std::string(lost.message()),
                HasSubstr(model::ApprovalStateName(decisions[winner].state)));
    ExpectSameApproval(GetApproval(store(), id), decisions[winner]);
  }
}

// --- Renewal jobs ---

using model::RenewalState;

RenewalRecord Renewal(const std::string& id, const std::string& agent_id,
                      absl::Time created_at = kT0) {
  RenewalRecord renewal;
  renewal.id = id;
  renewal.agent_id = agent_id;
  renewal.fqdn = agent_id == "agent-1" ? "web1.example.com" : "web2.example.com";
  renewal.profile = model::ScomProfile();
  renewal.issuer = "builtin";
  renewal.steps = {{RenewalState::kPlanned, created_at, ""}};
  renewal.created_by = "alice";
  renewal.created_at = created_at;
  renewal.updated_at = created_at;
  return renewal;
}

// A job at its last step, with every field set and bytes an encoding could mangle.
RenewalRecord FullRenewal(const std::string& id) {
  RenewalRecord renewal = Renewal(id, "agent-1", kT0 + absl::Microseconds(17));
  renewal.fqdn = "WEB1.example.com";
  renewal.profile = AwkwardProfile();
  renewal.issuer = "manual";
  renewal.bind = false;
  renewal.state = RenewalState::kRolledBack;
  renewal.steps = {
      {RenewalState::kPlanned, kT0 + absl::Microseconds(17), "by alice, 3:abc,"},
      {RenewalState::kCsrRequested, kT0 + absl::Seconds(1), "renew command sent"},
      {RenewalState::kCsrReceived, kT0 + absl::Seconds(2), std::string("csr\0ok", 6)},
      {RenewalState::kPolicyChecked, kT0 + absl::Seconds(3), ""},
      {RenewalState::kSubmitted, kT0 + absl::Seconds(4), "to the manual issuer"},
      {RenewalState::kPendingApproval, kT0 + absl::Seconds(5), "waiting\nfor an officer"},
      {RenewalState::kIssued, kT0 + kDay, "serial 0A1B"},
      {RenewalState::kInstallSent, kT0 + kDay + absl::Seconds(1), ""},
      {RenewalState::kInstalled, kT0 + kDay + absl::Seconds(2), ""},
      {RenewalState::kBindSent, kT0 + kDay + absl::Seconds(3), ""},
      {RenewalState::kRolledBack, kT0 + kDay + absl::Seconds(90), "no 20053: rolled back"},
  };
  renewal.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIC,4:abcd,\n";
  renewal.renew_command_id = id + "-renew";
  renewal.install_command_id = id + "-install";
  renewal.bind_command_id = id + "-bind";
  renewal.issuer_cookie = std::string("cookie\0,1:", 10);
  renewal.approval_request_id = "req-" + id;
  renewal.chain_pem = "-----BEGIN CERTIFICATE-----\nleaf\n-----BEGIN CERTIFICATE-----\nca\n";
  renewal.serial = "0A1B";
  renewal.thumbprint = "NEW1";
  renewal.failure_reason = "HealthService did not log 20053 within 1m30s";
  model::CommandResult evidence;
  evidence.thumbprint = "NEW1";
  evidence.problems = {"NOT_BOUND", ""};
  evidence.previous_channel_serial = "OLD1";
  evidence.channel_serial = "OLD1";
  evidence.rolled_back = true;
  evidence.events = {
      {kT0 + kDay + absl::Microseconds(3'000'001), 20052, "Warning", "certificate rejected"},
      {kT0 + kDay + absl::Seconds(4), 21016, "Error", std::string("line\n,2:x,\0", 11)},
  };
  evidence.detail = "rebind to NEW1 failed, OLD1 restored";
  evidence.csr_pem = "CSR";
  renewal.evidence = evidence;
  renewal.created_by = "controller";
  renewal.updated_at = kT0 + kDay + absl::Seconds(90);
  renewal.next_attempt_at = absl::InfiniteFuture();
  return renewal;
}

void ExpectSameRenewal(const RenewalRecord& actual, const RenewalRecord& expected) {
  SCOPED_TRACE(absl::StrCat("renewal ", expected.id));
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.agent_id, expected.agent_id);
  EXPECT_EQ(actual.fqdn, expected.fqdn);
  EXPECT_EQ(DescribeProfile(actual.profile), DescribeProfile(expected.profile));
  EXPECT_EQ(actual.issuer, expected.issuer);
  EXPECT_EQ(actual.bind, expected.bind);
  EXPECT_EQ(model::RenewalStateName(actual.state), model::RenewalStateName(expected.state));
  EXPECT_EQ(actual.steps.size(), expected.steps.size());
  for (size_t i = 0; i < std::min(actual.steps.size(), expected.steps.size()); ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i));
    EXPECT_EQ(model::RenewalStateName(actual.steps[i].state),
              model::RenewalStateName(expected.steps[i].state));
    EXPECT_EQ(actual.steps[i].at, expected.steps[i].at);
    EXPECT_EQ(actual.steps[i].note, expected.steps[i].note);
  }
  EXPECT_EQ(actual.csr_pem, expected.csr_pem);
  EXPECT_EQ(actual.renew_command_id, expected.renew_command_id);
  EXPECT_EQ(actual.install_command_id, expected.install_command_id);
  EXPECT_EQ(actual.bind_command_id, expected.bind_command_id);
  EXPECT_EQ(actual.issuer_cookie, expected.issuer_cookie);
  EXPECT_EQ(actual.approval_request_id, expected.approval_request_id);
  EXPECT_EQ(actual.chain_pem, expected.chain_pem);
  EXPECT_EQ(actual.serial, expected.serial);
  EXPECT_EQ(actual.thumbprint, expected.thumbprint);
  EXPECT_EQ(actual.failure_reason, expected.failure_reason);
  EXPECT_EQ(actual.evidence.has_value(), expected.evidence.has_value());
  if (actual.evidence.has_value() && expected.evidence.has_value()) {
    ExpectSameResult(*actual.evidence, *expected.evidence);
  }
  EXPECT_EQ(actual.created_by, expected.created_by);
  EXPECT_EQ(actual.created_at, expected.created_at);
  EXPECT_EQ(actual.updated_at, expected.updated_at);
  EXPECT_EQ(actual.next_attempt_at, expected.next_attempt_at);
}

RenewalRecord GetRenewal(Store& store, const std::string& id) {
  absl::StatusOr<RenewalRecord> renewal = store.GetRenewal(id);
  EXPECT_TRUE(renewal.ok()) << renewal.status();
  return renewal.ok() ? *renewal : RenewalRecord();
}

std::vector<RenewalRecord> ListRenewals(Store& store, RenewalFilter filter = {}) {
  absl::StatusOr<std::vector<RenewalRecord>> renewals = store.ListRenewals(filter);
  EXPECT_TRUE(renewals.ok()) << renewals.status();
  return renewals.ok() ? *renewals : std::vector<RenewalRecord>();
}

std::vector<std::string> RenewalIds(const std::vector<RenewalRecord>& renewals) {
  std::vector<std::string> ids;
  for (const RenewalRecord& renewal : renewals) ids.push_back(renewal.id);
  return ids;
}

// `renewal` moved on to `state` at `at`, the step recorded.
RenewalRecord Moved(RenewalRecord renewal, RenewalState state, absl::Time at,
                    const std::string& note = "") {
  renewal.state = state;
  renewal.steps.push_back({state, at, note});
  renewal.updated_at = at;
  return renewal;
}

TEST_P(StoreConformanceTest, ARenewalWithEveryFieldSetComesBackAsItWasGivenFromEveryMethod) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  const RenewalRecord full = FullRenewal("renewal-1");
  ASSERT_TRUE(store().CreateRenewal(full).ok());
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), full);
  std::vector<RenewalRecord> listed = ListRenewals(store());
  ASSERT_EQ(listed.size(), 1u);
  ExpectSameRenewal(listed[0], full);
  absl::StatusOr<RenewalRecord> found = store().FindRenewalByCommand("renewal-1-bind");
  ASSERT_TRUE(found.ok()) << found.status();
  ExpectSameRenewal(*found, full);
}

TEST_P(StoreConformanceTest, ANewRenewalComesBackAsItWasGivenWithNoEvidenceAndDueNow) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord renewal = Renewal("renewal-1", "agent-2", kT0 + absl::Microseconds(5));
  renewal.steps = {};
  ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  RenewalRecord got = GetRenewal(store(), "renewal-1");
  ExpectSameRenewal(got, renewal);
  EXPECT_FALSE(got.evidence.has_value());
  EXPECT_TRUE(got.bind);
  EXPECT_EQ(got.state, RenewalState::kPlanned);
  EXPECT_EQ(got.next_attempt_at, absl::InfinitePast());
}

TEST_P(StoreConformanceTest, ARenewalKeepsInfiniteTimesAndEmptyEvidence) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord renewal = Renewal("renewal-1", "agent-1");
  renewal.steps = {{RenewalState::kPlanned, absl::InfinitePast(), "past"},
                   {RenewalState::kCsrRequested, absl::InfiniteFuture(), "future"}};
  renewal.state = RenewalState::kCsrRequested;
  renewal.updated_at = absl::InfiniteFuture();
  renewal.next_attempt_at = absl::InfiniteFuture();
  renewal.evidence = model::CommandResult{};
  ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  RenewalRecord got = GetRenewal(store(), "renewal-1");
  ExpectSameRenewal(got, renewal);
  EXPECT_TRUE(got.evidence.has_value());

  renewal = Moved(renewal, RenewalState::kCsrReceived, kT0 + absl::Microseconds(1));
  renewal.next_attempt_at = absl::InfinitePast();
  renewal.evidence.reset();
  ASSERT_TRUE(store().UpdateRenewal(renewal, RenewalState::kCsrRequested).ok());
  got = GetRenewal(store(), "renewal-1");
  ExpectSameRenewal(got, renewal);
  EXPECT_FALSE(got.evidence.has_value());
}

TEST_P(StoreConformanceTest, CreatingARenewalWithAnExistingIdIsAlreadyExistsAndKeepsTheFirst) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord first = Renewal("renewal-1", "agent-1");
  ASSERT_TRUE(store().CreateRenewal(first).ok());
  absl::Status status = store().CreateRenewal(Renewal("renewal-1", "agent-2", kT0 + kDay));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), first);
  RenewalFilter filter;
  filter.agent_id = "agent-2";
  EXPECT_THAT(ListRenewals(store(), filter), IsEmpty());
}

TEST_P(StoreConformanceTest, AnAgentHasAtMostOneActiveRenewal) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord first = Renewal("renewal-1", "agent-1");
  ASSERT_TRUE(store().CreateRenewal(first).ok());
  absl::Status second = store().CreateRenewal(Renewal("renewal-2", "agent-1", kT0 + kDay));
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists) << second;
  EXPECT_EQ(store().GetRenewal("renewal-2").status().code(), absl::StatusCode::kNotFound);
  // Another agent is not affected.
  EXPECT_TRUE(store().CreateRenewal(Renewal("renewal-3", "agent-2")).ok());
  // Once the first ended, the agent may be renewed again.
  RenewalRecord done = first;
  done.state = RenewalState::kDone;
  ASSERT_TRUE(store().UpdateRenewal(done, RenewalState::kPlanned).ok());
  EXPECT_TRUE(store().CreateRenewal(Renewal("renewal-2", "agent-1", kT0 + kDay)).ok());
}

TEST_P(StoreConformanceTest, CreatingARenewalForAnUnknownAgentIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  absl::Status status = store().CreateRenewal(Renewal("renewal-1", "agent-9"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store().GetRenewal("renewal-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ListRenewals(store()), IsEmpty());
}

TEST_P(StoreConformanceTest, RenewalsWithEmptyIdsAreInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  EXPECT_EQ(store().CreateRenewal(Renewal("", "agent-1")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().CreateRenewal(Renewal("renewal-1", "")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ListRenewals(store()), IsEmpty());
  EXPECT_EQ(store().GetRenewal("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().UpdateRenewal(Renewal("", "agent-1"), RenewalState::kPlanned).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().FindRenewalByCommand("").status().code(), absl::StatusCode::kInvalidArgument);
  RenewalFilter filter;
  filter.limit = 0;
  EXPECT_EQ(store().ListRenewals(filter).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, GettingUpdatingOrFindingAnUnknownRenewalIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord renewal = Renewal("renewal-1", "agent-1");
  renewal.renew_command_id = "cmd-1";
  ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  EXPECT_EQ(store().GetRenewal("renewal-2").status().code(), absl::StatusCode::kNotFound);
  absl::Status status = store().UpdateRenewal(
      Moved(Renewal("renewal-2", "agent-1"), RenewalState::kCsrRequested, kT0),
      RenewalState::kPlanned);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store().GetRenewal("renewal-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().FindRenewalByCommand("cmd-2").status().code(), absl::StatusCode::kNotFound);
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), renewal);
}

TEST_P(StoreConformanceTest, UpdatingARenewalInTheExpectedStateReplacesItStepByStep) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord renewal = Renewal("renewal-1", "agent-1");
  ASSERT_TRUE(store().CreateRenewal(renewal).ok());

  RenewalRecord requested =
      Moved(renewal, RenewalState::kCsrRequested, kT0 + absl::Seconds(1), "renew sent");
  requested.renew_command_id = "cmd-renew";
  requested.next_attempt_at = kT0 + absl::Hours(1);
  ASSERT_TRUE(store().UpdateRenewal(requested, RenewalState::kPlanned).ok());
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), requested);

  RenewalRecord received =
      Moved(requested, RenewalState::kCsrReceived, kT0 + absl::Seconds(2), "csr ok");
  received.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\n";
  received.fqdn = "web1.new.example.com";
  received.profile = AwkwardProfile();
  received.issuer = "manual";
  received.bind = false;
  received.issuer_cookie = "cookie";
  received.failure_reason = "transient: retried";
  received.evidence = model::CommandResult{};
  received.evidence->csr_pem = received.csr_pem;
  ASSERT_TRUE(store().UpdateRenewal(received, RenewalState::kCsrRequested).ok());
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), received);
}

TEST_P(StoreConformanceTest, UpdatingARenewalInAnotherStateIsFailedPreconditionNamingIt) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord renewal = Renewal("renewal-1", "agent-1");
  ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  RenewalRecord submitted = Moved(renewal, RenewalState::kSubmitted, kT0 + absl::Seconds(1));
  ASSERT_TRUE(store().UpdateRenewal(submitted, RenewalState::kPlanned).ok());

  for (RenewalState expected :
       {RenewalState::kPlanned, RenewalState::kIssued, RenewalState::kFailed}) {
    SCOPED_TRACE(model::RenewalStateName(expected));
    absl::Status status = store().UpdateRenewal(
        Moved(submitted, RenewalState::kFailed, kT0 + absl::Seconds(2)), expected);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("submitted"));
  }
  ExpectSameRenewal(GetRenewal(store(), "renewal-1"), submitted);
}

TEST_P(StoreConformanceTest, ExactlyOneOfManyConcurrentStepsOfARenewalTakesEffect) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  const RenewalRecord planned = Renewal("renewal-1", "agent-1");
  ASSERT_TRUE(store().CreateRenewal(planned).ok());
  constexpr int kThreads = 8;
  std::vector<RenewalRecord> attempts;
  for (int i = 0; i < kThreads; ++i) {
    RenewalRecord attempt = Moved(planned, RenewalState::kCsrRequested, kT0 + absl::Seconds(i + 1),
                                  absl::StrCat("thread ", i));
    attempt.renew_command_id = absl::StrCat("cmd-", i);
    attempts.push_back(attempt);
  }
  std::vector<absl::Status> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = store().UpdateRenewal(attempts[i], RenewalState::kPlanned); });
  }
  for (std::thread& t : threads) t.join();

  int winners = 0;
  for (int i = 0; i < kThreads; ++i) {
    SCOPED_TRACE(absl::StrCat("thread ", i));
    if (results[i].ok()) {
      ++winners;
      ExpectSameRenewal(GetRenewal(store(), "renewal-1"), attempts[i]);
    } else {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kFailedPrecondition) << results[i];
      EXPECT_THAT(std::string(results[i].message()), HasSubstr("csr_requested"));
    }
  }
  EXPECT_EQ(winners, 1);
}

TEST_P(StoreConformanceTest, ListRenewalsFiltersByAgentStateAndActivity) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  // At most one active job per agent (AnAgentHasAtMostOneActiveRenewal).
  const std::pair<const char*, RenewalState> jobs[] = {
      {"a-done", RenewalState::kDone},
      {"b-failed", RenewalState::kFailed},
      {"a-rolled", RenewalState::kRolledBack},
      {"a-issued", RenewalState::kIssued},
      {"b-pending", RenewalState::kPendingApproval},
      {"b-done", RenewalState::kDone},
  };
  int i = 0;
  for (const auto& [id, state] : jobs) {
    RenewalRecord renewal =
        Renewal(id, id[0] == 'a' ? "agent-1" : "agent-2", kT0 + absl::Seconds(++i));
    renewal.state = state;
    ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  }

  EXPECT_THAT(RenewalIds(ListRenewals(store())),
              ElementsAre("a-done", "b-failed", "a-rolled", "a-issued", "b-pending", "b-done"));
  RenewalFilter filter;
  filter.agent_id = "agent-1";
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)),
              ElementsAre("a-done", "a-rolled", "a-issued"));
  filter.active_only = true;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("a-issued"));
  filter.state = RenewalState::kIssued;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("a-issued"));
  filter.state = RenewalState::kDone;  // not active: nothing
  EXPECT_THAT(ListRenewals(store(), filter), IsEmpty());
  filter.active_only = false;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("a-done"));
  filter.agent_id.reset();
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("a-done", "b-done"));
  filter.state.reset();
  filter.active_only = true;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("a-issued", "b-pending"));
  filter.agent_id = "agent-9";
  EXPECT_THAT(ListRenewals(store(), filter), IsEmpty());
}

TEST_P(StoreConformanceTest, ListRenewalsReturnsTheNewestLimitOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  // Created out of order.
  for (int i : {3, 0, 4, 1, 5, 2}) {
    RenewalRecord renewal = Renewal(absl::StrCat("r", i), i % 2 == 0 ? "agent-1" : "agent-2",
                                    kT0 + absl::Microseconds(i));
    // One active job per agent: r2 and r5.
    if (i != 2 && i != 5) renewal.state = RenewalState::kDone;
    ASSERT_TRUE(store().CreateRenewal(renewal).ok());
  }
  RenewalFilter filter;
  filter.limit = 3;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("r3", "r4", "r5"));
  filter.limit = 1;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("r5"));
  filter.limit = std::numeric_limits<size_t>::max();
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)),
              ElementsAre("r0", "r1", "r2", "r3", "r4", "r5"));
  filter.limit = 2;
  filter.agent_id = "agent-1";
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("r2", "r4"));
  filter.active_only = true;
  EXPECT_THAT(RenewalIds(ListRenewals(store(), filter)), ElementsAre("r2"));
}

TEST_P(StoreConformanceTest, FindRenewalByCommandFindsTheJobByEachOfItsThreeCommands) {
  ASSERT_NO_FATAL_FAILURE(AddTwoAgents(store()));
  RenewalRecord first = Renewal("renewal-1", "agent-1");
  first.renew_command_id = "renew-1";
  ASSERT_TRUE(store().CreateRenewal(first).ok());
  RenewalRecord second = FullRenewal("renewal-2");
  ASSERT_TRUE(store().CreateRenewal(second).ok());

  for (const auto& [command_id, renewal_id] : std::vector<std::pair<std::string, std::string>>{
           {"renew-1", "renewal-1"},
           {"renewal-2-renew", "renewal-2"},
           {"renewal-2-install", "renewal-2"},
           {"renewal-2-bind", "renewal-2"},
       }) {
    SCOPED_TRACE(command_id);
    absl::StatusOr<RenewalRecord> found = store().FindRenewalByCommand(command_id);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(found->id, renewal_id);
  }
  for (const char* unknown : {"renew-2", "renewal-1", "renewal-2", "cmd-1"}) {
    SCOPED_TRACE(unknown);
    EXPECT_EQ(store().FindRenewalByCommand(unknown).status().code(), absl::StatusCode::kNotFound);
  }

  // Commands sent later are found once the job records them.
  RenewalRecord installing = Moved(first, RenewalState::kInstallSent, kT0 + kDay);
  installing.install_command_id = "install-1";
  ASSERT_TRUE(store().UpdateRenewal(installing, RenewalState::kPlanned).ok());
  absl::StatusOr<RenewalRecord> found = store().FindRenewalByCommand("install-1");
  ASSERT_TRUE(found.ok()) << found.status();
  ExpectSameRenewal(*found, installing);
  EXPECT_EQ(store().FindRenewalByCommand("bind-1").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace certfleet::controller::store
