// The real certfleet-controller, certfleet-agent and certfleetctl on loopback: agents renew their
// identities on their own, and an agent whose identity expired while it was stopped is recovered
// with a re-enrollment token bound to it (ARCHITECTURE.md, "Trust and identity").

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"
#include "tests/integration/process.h"

namespace certfleet::testing {
namespace {

// A FleetTest whose controller signs agent identities for `lifetime` only.
class IdentityTest : public FleetTest {
 protected:
  explicit IdentityTest(std::string lifetime) : lifetime_(std::move(lifetime)) {}

  void SetUp() override {
    extra_controller_args_ = {"--agent-identity-lifetime", lifetime_};
    FleetTest::SetUp();
  }

  std::string AgentDir(const LabHost& host) const { return host.root() + "-agent"; }

  // The agent with `fqdn` as `agents list --output json` shows it; empty when absent.
  Struct AgentByFqdn(const std::string& fqdn) {
    const ListValue agents = Agents();
    for (const auto& v : agents.values()) {
      if (Str(v.struct_value(), "fqdn") == fqdn) return v.struct_value();
    }
    return Struct();
  }

  // The leaf of the identity the agent keeps in its state directory.
  common::model::CertificateInfo StoredIdentity(const LabHost& host) {
    auto cert = common::crypto::CertificateFromPem(ReadText(AgentDir(host) + "/identity.pem"));
    EXPECT_TRUE(cert.ok()) << cert.status();
    if (!cert.ok()) return {};
    auto info = common::crypto::DescribeCertificate(cert->get(), false);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : common::model::CertificateInfo();
  }

  // Starts the agent of `host` with its own log file `name`.log; `token` may be empty.
  Process& StartAgentLogged(const LabHost& host, const std::string& token,
                            const std::string& name) {
    agents_.push_back(
        std::make_unique<Process>(AgentArgs(host, token), dir_ + "/" + name + ".log"));
    return *agents_.back();
  }

  std::string lifetime_;
};

class IdentityRenewalTest : public IdentityTest {
 protected:
  IdentityRenewalTest() : IdentityTest("20s") {}
};

class IdentityExpiryTest : public IdentityTest {
 protected:
  IdentityExpiryTest() : IdentityTest("6s") {}
};

TEST_F(IdentityRenewalTest, AnAgentRenewsItsIdentityByItselfStaysConnectedAndStillRunsCommands) {
  LabHost host(dir_ + "/host1", "scom-id1.corp.example");
  Process& agent = StartAgentLogged(host, CreateToken(), "agent1");
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(20)))
      << agent.Log() << controller_->Log();
  const Struct first = AgentByFqdn(host.fqdn());
  const std::string id = Str(first, "id");
  const std::string serial = Str(first, "identity_serial");
  ASSERT_FALSE(serial.empty()) << "agents list shows no identity serial";
  EXPECT_EQ(StoredIdentity(host).serial, serial);
  const std::string old_key = ReadText(AgentDir(host) + "/identity.key");

  // Half of 20 s (plus the backdate), with jitter: the agent renews within about 12 s.
  Struct renewed;
  ASSERT_TRUE(WaitFor(
      [&] {
        renewed = AgentByFqdn(host.fqdn());
        return !Str(renewed, "identity_serial").empty() &&
               Str(renewed, "identity_serial") != serial;
      },
      absl::Seconds(25)))
      << agent.Log();
  EXPECT_EQ(Str(renewed, "id"), id);
  EXPECT_GT(Str(renewed, "identity_not_after"), Str(first, "identity_not_after"));
  EXPECT_TRUE(agent.Running());
  EXPECT_TRUE(absl::StrContains(agent.Log(), "renewed the agent identity")) << agent.Log();

  // The new key and chain replaced the old ones on disk (the key 0600, made on the host).
  ASSERT_TRUE(WaitFor([&] { return StoredIdentity(host).serial != serial; }, absl::Seconds(5)));
  EXPECT_NE(ReadText(AgentDir(host) + "/identity.key"), old_key);
  struct stat st;
  ASSERT_EQ(::stat((AgentDir(host) + "/identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Reconnected with the new identity: still one agent, connected, and it runs commands.
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(10))) << agent.Log();
  EXPECT_EQ(Agents().values_size(), 1);
  RunResult scan = Ctl({"cmd", "scan", "--agent", host.fqdn(), "--wait", "--output", "json"});
  EXPECT_EQ(scan.exit_code, 0) << scan.out << scan.err << agent.Log();
  EXPECT_TRUE(absl::StrContains(scan.out, "succeeded")) << scan.out;
}

TEST_F(IdentityExpiryTest, AnAgentWhoseIdentityExpiredIsRecoveredOnlyWithItsOwnReenrollmentToken) {
  LabHost a(dir_ + "/host-a", "scom-a.corp.example");
  LabHost b(dir_ + "/host-b", "scom-b.corp.example");
  Process& first_a = StartAgentLogged(a, CreateToken(), "a1");
  Process& first_b = StartAgentLogged(b, CreateToken(), "b1");
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 2; }, absl::Seconds(20)))
      << first_a.Log() << first_b.Log() << controller_->Log();
  const std::string id_a = Str(AgentByFqdn(a.fqdn()), "id");
  ASSERT_FALSE(id_a.empty());

  // Both stop; their identities run out while they are down.
  for (Process* p : {&first_a, &first_b}) {
    p->Signal(SIGTERM);
    ASSERT_EQ(p->Wait(absl::Seconds(20)), 0) << p->Log();
  }
  const absl::Time expiry =
      std::max(StoredIdentity(a).not_after, StoredIdentity(b).not_after) + absl::Seconds(1);
  absl::SleepFor(std::max(expiry - absl::Now(), absl::ZeroDuration()));

  // Without a token the agent refuses to start and says what to do.
  Process& no_token = StartAgentLogged(a, "", "a2");
  EXPECT_EQ(no_token.Wait(absl::Seconds(20)), 1) << no_token.Log();
  EXPECT_TRUE(absl::StrContains(no_token.Log(), "expired")) << no_token.Log();
  EXPECT_TRUE(absl::StrContains(no_token.Log(), "certfleetctl tokens create --agent " + id_a))
      << no_token.Log();

  const std::string token = CreateToken({"--agent", id_a});
  ASSERT_FALSE(token.empty());

  // Agent B's state directory cannot use A's token (and does not use it up).
  Process& wrong = StartAgentLogged(b, token, "b2");
  EXPECT_EQ(wrong.Wait(absl::Seconds(20)), 1) << wrong.Log();
  EXPECT_TRUE(absl::StrContains(wrong.Log(), "PERMISSION_DENIED") ||
              absl::StrContains(wrong.Log(), "PermissionDenied") ||
              absl::StrContains(wrong.Log(), "bound to agent"))
      << wrong.Log();

  // A re-enrolls with it: same agent id, a fresh identity, connected.
  Process& recovered = StartAgentLogged(a, token, "a3");
  ASSERT_TRUE(WaitFor([&] { return Str(AgentByFqdn(a.fqdn()), "status") == "connected"; },
                      absl::Seconds(20)))
      << recovered.Log() << controller_->Log();
  EXPECT_TRUE(absl::StrContains(recovered.Log(), "re-enrolled as agent " + id_a))
      << recovered.Log();
  EXPECT_EQ(ReadText(AgentDir(a) + "/agent_id"), id_a + "\n");
  EXPECT_EQ(Agents().values_size(), 2);  // no new agent
  EXPECT_GT(StoredIdentity(a).not_after, absl::Now());
}

}  // namespace
}  // namespace certfleet::testing
