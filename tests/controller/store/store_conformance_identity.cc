// The Store conformance suite, agent identities: re-enrollment tokens (JoinTokenRecord::agent_id),
// UpdateAgentIdentity and ReenrollAgent.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "controller/store/records.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/store/store_conformance.h"

namespace certfleet::controller::store {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);  // 2026-09-21
const absl::Duration kDay = absl::Hours(24);

JoinTokenRecord Token(const std::string& hash, const std::string& agent_id = "",
                      absl::Time expires_at = kT0 + kDay) {
  JoinTokenRecord token;
  token.token_hash = hash;
  token.created_at = kT0 - absl::Hours(1);
  token.expires_at = expires_at;
  token.created_by = "alice";
  token.agent_id = agent_id;
  return token;
}

AgentRecord Agent(const std::string& id, const std::string& fqdn) {
  AgentRecord agent;
  agent.id = id;
  agent.fqdn = fqdn;
  agent.labels = {{"site", "paris"}};
  agent.platform = "lab";
  agent.version = "1.2.3";
  agent.enrolled_at = kT0 - 40 * kDay;
  agent.identity_serial = "0A1B";
  agent.identity_not_after = kT0 - 10 * kDay;
  return agent;
}

// The identity serial of `agent_id` as stored; "" (and a failure) when it cannot be read.
std::string SerialOf(Store& store, const std::string& agent_id) {
  absl::StatusOr<AgentRecord> agent = store.GetAgent(agent_id);
  EXPECT_TRUE(agent.ok()) << agent.status();
  return agent.ok() ? agent->identity_serial : "";
}

TEST_P(StoreConformanceTest, AReenrollmentTokenKeepsTheAgentItIsBoundTo) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  absl::StatusOr<JoinTokenRecord> used =
      store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + 30 * kDay, kT0);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->agent_id, "agent-a");
  EXPECT_EQ(used->used_by_agent, "agent-a");
  EXPECT_EQ(used->used_at, std::optional<absl::Time>(kT0));
  EXPECT_EQ(used->created_by, "alice");
}

TEST_P(StoreConformanceTest, APlainJoinTokenComesBackWithoutAnAgent) {
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  absl::StatusOr<JoinTokenRecord> used =
      store().ConsumeJoinToken("hash-1", "web1.example.com", "agent-1", kT0);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(used->agent_id, "");
}

TEST_P(StoreConformanceTest, UpdateAgentIdentityRecordsTheNewSerialAndNotAfterOnly) {
  AgentRecord agent = Agent("agent-a", "web1.example.com");
  ASSERT_TRUE(store().CreateAgent(agent).ok());
  const absl::Time not_after = kT0 + 30 * kDay + absl::Microseconds(7);
  ASSERT_TRUE(store().UpdateAgentIdentity("agent-a", "C0FFEE", not_after).ok());
  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->identity_serial, "C0FFEE");
  EXPECT_EQ(got->identity_not_after, not_after);
  EXPECT_EQ(got->fqdn, agent.fqdn);
  EXPECT_EQ(got->labels, agent.labels);
  EXPECT_EQ(got->enrolled_at, agent.enrolled_at);
  EXPECT_EQ(got->platform, agent.platform);
}

TEST_P(StoreConformanceTest, UpdateAgentIdentityOfAnUnknownAgentIsNotFound) {
  absl::Status status = store().UpdateAgentIdentity("nobody", "C0FFEE", kT0);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

TEST_P(StoreConformanceTest, UpdateAgentIdentityWithAnEmptyAgentIdOrSerialIsInvalidArgument) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  EXPECT_EQ(store().UpdateAgentIdentity("", "C0FFEE", kT0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().UpdateAgentIdentity("agent-a", "", kT0).code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->identity_serial, "0A1B");
}

// --- ReenrollAgent ---

TEST_P(StoreConformanceTest, ReenrollAgentConsumesTheTokenAndRecordsTheNewIdentity) {
  AgentRecord agent = Agent("agent-a", "web1.example.com");
  ASSERT_TRUE(store().CreateAgent(agent).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  const absl::Time not_after = kT0 + 30 * kDay;
  ASSERT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", not_after, kT0).ok());

  absl::StatusOr<AgentRecord> got = store().GetAgent("agent-a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->identity_serial, "NEW1");
  EXPECT_EQ(got->identity_not_after, not_after);
  EXPECT_EQ(got->fqdn, agent.fqdn);
  EXPECT_EQ(got->labels, agent.labels);
  EXPECT_EQ(got->enrolled_at, agent.enrolled_at);
  // Single use.
  absl::StatusOr<JoinTokenRecord> again =
      store().ReenrollAgent("hash-1", "agent-a", "NEW2", not_after, kT0 + absl::Minutes(1));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("already used"));
  EXPECT_EQ(SerialOf(store(), "agent-a"), "NEW1");
}

TEST_P(StoreConformanceTest, ReenrollAgentNeverCreatesAnAgent) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  ASSERT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
  absl::StatusOr<std::vector<AgentRecord>> agents = store().ListAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_EQ(agents->size(), 1u);
}

TEST_P(StoreConformanceTest, ReenrollingWithATokenBoundToAnotherAgentIsPermissionDenied) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateAgent(Agent("agent-b", "web2.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  absl::StatusOr<JoinTokenRecord> wrong =
      store().ReenrollAgent("hash-1", "agent-b", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_EQ(SerialOf(store(), "agent-b"), "0A1B");
  // The token stays unused for its own agent.
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

TEST_P(StoreConformanceTest, ReenrollingWithAPlainJoinTokenIsPermissionDeniedAndLeavesItUnused) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1")).ok());
  absl::StatusOr<JoinTokenRecord> wrong =
      store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_EQ(SerialOf(store(), "agent-a"), "0A1B");
  EXPECT_TRUE(store().ConsumeJoinToken("hash-1", "web9.example.com", "agent-9", kT0).ok());
}

TEST_P(StoreConformanceTest, ReenrollingWithATokenBoundToAnotherFqdnIsPermissionDenied) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  JoinTokenRecord token = Token("hash-1", "agent-a");
  token.fqdn = "web2.example.com";
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  absl::StatusOr<JoinTokenRecord> wrong =
      store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_EQ(SerialOf(store(), "agent-a"), "0A1B");
}

TEST_P(StoreConformanceTest, ReenrollingComparesTheBoundFqdnWithTheAgentsInAnyCase) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  JoinTokenRecord token = Token("hash-1", "agent-a");
  token.fqdn = "WEB1.Example.com";
  ASSERT_TRUE(store().CreateJoinToken(token).ok());
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

TEST_P(StoreConformanceTest, ReenrollingAnUnknownAgentIsNotFoundAndLeavesTheTokenUnused) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  absl::StatusOr<JoinTokenRecord> unknown =
      store().ReenrollAgent("hash-1", "nobody", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

TEST_P(StoreConformanceTest, ReenrollingWithAnUnknownTokenIsNotFound) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  absl::StatusOr<JoinTokenRecord> unknown =
      store().ReenrollAgent("nope", "agent-a", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  EXPECT_EQ(SerialOf(store(), "agent-a"), "0A1B");
}

TEST_P(StoreConformanceTest, ReenrollingWithAnExpiredTokenIsFailedPreconditionAndLeavesItUnused) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a", kT0)).ok());
  absl::StatusOr<JoinTokenRecord> late =
      store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("expired"));
  EXPECT_EQ(SerialOf(store(), "agent-a"), "0A1B");
  EXPECT_TRUE(
      store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0 - absl::Seconds(1)).ok());
}

TEST_P(StoreConformanceTest, ReenrollingWithEmptyArgumentsIsInvalidArgument) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  EXPECT_EQ(store().ReenrollAgent("", "agent-a", "NEW1", kT0 + kDay, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ReenrollAgent("hash-1", "", "NEW1", kT0 + kDay, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ReenrollAgent("hash-1", "agent-a", "", kT0 + kDay, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

// --- A re-enrollment token never enrolls a new agent ---

TEST_P(StoreConformanceTest, ConsumingAReenrollmentTokenAsAJoinTokenIsPermissionDenied) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  for (const char* agent_id : {"agent-new", "agent-a"}) {
    absl::StatusOr<JoinTokenRecord> used =
        store().ConsumeJoinToken("hash-1", "web1.example.com", agent_id, kT0);
    EXPECT_EQ(used.status().code(), absl::StatusCode::kPermissionDenied)
        << agent_id << ": " << used.status();
  }
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

TEST_P(StoreConformanceTest, EnrollingWithAReenrollmentTokenIsPermissionDeniedAndCreatesNoAgent) {
  ASSERT_TRUE(store().CreateAgent(Agent("agent-a", "web1.example.com")).ok());
  ASSERT_TRUE(store().CreateJoinToken(Token("hash-1", "agent-a")).ok());
  absl::StatusOr<JoinTokenRecord> enrolled =
      store().EnrollAgent("hash-1", Agent("agent-new", "web1.example.com"), kT0);
  EXPECT_EQ(enrolled.status().code(), absl::StatusCode::kPermissionDenied) << enrolled.status();
  EXPECT_EQ(store().GetAgent("agent-new").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store().ReenrollAgent("hash-1", "agent-a", "NEW1", kT0 + kDay, kT0).ok());
}

}  // namespace
}  // namespace certfleet::controller::store
