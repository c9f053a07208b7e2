// The real certfleet-controller, certfleet-agent and certfleetctl on loopback: enrollment,
// inventory, drift, the security baseline, restarts and bad input.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "certfleet/v1/admin.grpc.pb.h"
#include "certfleet/v1/agent.grpc.pb.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/model/certificate.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"
#include "tests/integration/process.h"
#include "tests/testing/test_pki.h"

namespace certfleet::testing {
namespace {

TEST_F(FleetTest, ThreeAgentsEnrollAndTheirCertificatesAreJudged) {
  // Host 1: a good bound certificate. Host 2: bound, expiring in 10 days. Host 3: bound, without
  // the client-auth EKU, plus a certificate whose key sits unlinked in MachineKeys.
  LabHost h1(dir_ + "/host1", "scom-ms1.corp.example");
  LabHost h2(dir_ + "/host2", "scom-gw2.corp.example");
  LabHost h3(dir_ + "/host3", "scom-agent3.corp.example");
  for (LabHost* h : {&h1, &h2, &h3}) h->Trust(*pki_);

  TestCert good = pki_->Issue(pki_->ScomLeafSpec(h1.fqdn()));
  h1.AddToMy(good, "good");
  h1.Bind(good);

  auto expiring_spec = pki_->ScomLeafSpec(h2.fqdn());
  expiring_spec.not_after = absl::Now() + absl::Hours(24 * 10);
  TestCert expiring = pki_->Issue(expiring_spec);
  h2.AddToMy(expiring, "expiring");
  h2.Bind(expiring);

  auto no_client_spec = pki_->ScomLeafSpec(h3.fqdn());
  no_client_spec.extended_key_usage = {std::string(common::model::kServerAuthOid)};
  TestCert no_client = pki_->Issue(no_client_spec);
  h3.AddToMy(no_client, "server-only");
  h3.Bind(no_client);
  TestCert unlinked = pki_->Issue(pki_->ScomLeafSpec(h3.fqdn()));
  h3.AddToMy(unlinked, "unlinked", /*linked=*/false);

  StartAgent(h1, CreateToken({"--label", "role=management-server"}));
  StartAgent(h2, CreateToken({"--fqdn", h2.fqdn()}));
  StartAgent(h3, CreateToken());

  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 3; }, absl::Seconds(60)))
      << Ctl({"agents", "list"}).out << controller_->Log();

  ListValue agents = Agents();
  ASSERT_EQ(agents.values_size(), 3);
  bool saw_label = false;
  for (const auto& v : agents.values()) {
    const Struct& a = v.struct_value();
    EXPECT_EQ(Str(a, "platform"), "lab");
    EXPECT_FALSE(Str(a, "id").empty());
    EXPECT_FALSE(Str(a, "last_seen").empty());
    if (Str(a, "fqdn") == h1.fqdn()) {
      saw_label = a.fields().at("labels").struct_value().fields().at("role").string_value() ==
                  "management-server";
    }
  }
  EXPECT_TRUE(saw_label);

  // Inventory arrives with the first full report.
  auto my_certs = [&](const std::string& agent) {
    RunResult r = Ctl({"certs", "list", "--agent", agent, "--output", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Struct> out;
    ListValue list = ParseArray(r.out);
    for (const auto& v : list.values()) {
      if (Str(v.struct_value(), "store") == "My") out.push_back(v.struct_value());
    }
    return out;
  };
  std::vector<Struct> c1;
  ASSERT_TRUE(WaitFor([&] { return (c1 = my_certs(h1.fqdn())).size() == 1; }, absl::Seconds(30)));
  EXPECT_TRUE(c1[0].fields().at("bound").bool_value());
  EXPECT_TRUE(c1[0].fields().at("compliant").bool_value());
  EXPECT_TRUE(Strings(c1[0], "problems").empty());
  EXPECT_EQ(Str(c1[0], "fqdn"), h1.fqdn());

  std::vector<Struct> c2;
  ASSERT_TRUE(WaitFor([&] { return (c2 = my_certs(h2.fqdn())).size() == 1; }, absl::Seconds(30)));
  EXPECT_TRUE(Has(Strings(c2[0], "problems"), "EXPIRES_SOON"));

  std::vector<Struct> c3;
  ASSERT_TRUE(WaitFor([&] { return (c3 = my_certs(h3.fqdn())).size() == 2; }, absl::Seconds(30)));
  for (const auto& c : c3) {
    if (c.fields().at("bound").bool_value()) {
      EXPECT_TRUE(Has(Strings(c, "problems"), "MISSING_CLIENT_AUTH_EKU"));
    } else {
      EXPECT_TRUE(Has(Strings(c, "problems"), "NO_PRIVATE_KEY"));
      EXPECT_FALSE(c.fields().at("has_private_key").bool_value());
    }
  }

  // Filters: by problem code, and by expiry window.
  RunResult soon = Ctl({"certs", "list", "--problem", "EXPIRES_SOON", "--output", "json"});
  ASSERT_EQ(soon.exit_code, 0) << soon.err;
  ListValue soon_list = ParseArray(soon.out);
  ASSERT_EQ(soon_list.values_size(), 1);
  EXPECT_EQ(Str(soon_list.values(0).struct_value(), "fqdn"), h2.fqdn());
  RunResult within = Ctl({"certs", "list", "--expiring-within", "30d", "--output", "json"});
  ASSERT_EQ(within.exit_code, 0) << within.err;
  ListValue within_list = ParseArray(within.out);
  ASSERT_EQ(within_list.values_size(), 1);
  EXPECT_EQ(Str(within_list.values(0).struct_value(), "fqdn"), h2.fqdn());

  // Drift: host 1 gets a newer compliant certificate that is not bound (renewed, not active),
  // and host 2's binding is pointed at a serial that is not in the store.
  auto newer_spec = pki_->ScomLeafSpec(h1.fqdn());
  newer_spec.not_after = absl::Now() + absl::Hours(24 * 700);
  h1.AddToMy(pki_->Issue(newer_spec), "renewed");
  h2.BindSerial("0102030405");
  auto drift_of = [&](const std::string& fqdn) {
    ListValue agents = Agents();
    for (const auto& v : agents.values()) {
      if (Str(v.struct_value(), "fqdn") == fqdn) return Strings(v.struct_value(), "drift");
    }
    return std::vector<std::string>{};
  };
  EXPECT_TRUE(
      WaitFor([&] { return Has(drift_of(h1.fqdn()), "RENEWED_NOT_ACTIVE"); }, absl::Seconds(30)));
  EXPECT_TRUE(
      WaitFor([&] { return Has(drift_of(h2.fqdn()), "BINDING_NOT_FOUND"); }, absl::Seconds(30)));
  RunResult renewed = Ctl({"certs", "list", "--problem", "RENEWED_NOT_ACTIVE", "--output", "json"});
  ASSERT_EQ(renewed.exit_code, 0) << renewed.err;
  EXPECT_EQ(ParseArray(renewed.out).values_size(), 1);

  // Table output names the hosts.
  RunResult table = Ctl({"agents", "list"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(table.out, h3.fqdn()));
}

TEST_F(FleetTest, AReusedTokenIsRefused) {
  LabHost a(dir_ + "/a", "a.corp.example");
  LabHost b(dir_ + "/b", "b.corp.example");
  std::string token = CreateToken();
  StartAgent(a, token);
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)));
  RunResult second = RunCommand(AgentArgs(b, token), absl::Seconds(60));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(second.err, "already used")) << second.err;
  EXPECT_FALSE(absl::StrContains(second.err, token)) << "the token must never be logged";
}

TEST_F(FleetTest, TokensBoundToAnotherHostOrExpiredOrForgedAreRefused) {
  LabHost a(dir_ + "/a", "a.corp.example");
  RunResult bound = RunCommand(AgentArgs(a, CreateToken({"--fqdn", "other.corp.example"})));
  EXPECT_EQ(bound.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bound.err, "PERMISSION_DENIED")) << bound.err;

  std::string short_lived = CreateToken({"--ttl", "1s"});
  absl::SleepFor(absl::Seconds(2));
  RunResult expired = RunCommand(AgentArgs(a, short_lived));
  EXPECT_EQ(expired.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(expired.err, "expired")) << expired.err;

  // The right pin with an unknown secret.
  std::string real = CreateToken();
  std::string forged =
      "cfjt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" + real.substr(real.rfind('.'));
  RunResult unknown = RunCommand(AgentArgs(a, forged));
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "unknown join token")) << unknown.err;

  RunResult garbage = RunCommand(AgentArgs(a, "not-a-token"));
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(garbage.err, "malformed join token")) << garbage.err;
}

TEST_F(FleetTest, CallsWithoutAClientCertificateAreRefused) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadText(admin_dir() + "/ca.pem");
  auto stub =
      certfleet::v1::Admin::NewStub(grpc::CreateChannel(address_, grpc::SslCredentials(ssl)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  certfleet::v1::ListAgentsResponse resp;
  grpc::Status s = stub->ListAgents(&ctx, certfleet::v1::ListAgentsRequest(), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
}

TEST_F(FleetTest, TheControllerRefusesTlsOlderThan1Point2) {
  // The client is made to offer TLS 1.1 (OpenSSL 3 would not by default): the server refuses.
  RunResult old = RunCommand({"/bin/sh", "-c",
                              "echo | /usr/bin/openssl s_client -connect " + address_ +
                                  " -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1"});
  EXPECT_TRUE(absl::StrContains(old.out, "Cipher is (NONE)")) << old.out;
  RunResult current = RunCommand(
      {"/bin/sh", "-c", "echo | /usr/bin/openssl s_client -connect " + address_ + " -tls1_2 2>&1"});
  EXPECT_TRUE(absl::StrContains(current.out, "Protocol  : TLSv1.2")) << current.out;
  EXPECT_FALSE(absl::StrContains(current.out, "Cipher is (NONE)")) << current.out;
}

TEST_F(FleetTest, AnAgentCredentialIsRefusedOnTheAdminApi) {
  LabHost a(dir_ + "/a", "a.corp.example");
  StartAgent(a, CreateToken());
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)));
  std::string creds = dir_ + "/agent-creds";
  fs::create_directories(creds);
  fs::copy_file(a.root() + "-agent/ca.pem", creds + "/ca.pem");
  fs::copy_file(a.root() + "-agent/identity.pem", creds + "/client.pem");
  fs::copy_file(a.root() + "-agent/identity.key", creds + "/client.key");
  RunResult r = Ctl({"agents", "list"}, creds);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "permission denied")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "may not use the admin API")) << r.err;
}

TEST_F(FleetTest, AViewerMayListButNotCreateTokens) {
  std::string viewer = dir_ + "/viewer";
  RunResult issued =
      RunCommand({CERTFLEET_CONTROLLER_BIN, "issue-operator", "--state-dir", state_dir(), "--name",
                  "alice", "--role", "viewer", "--out", viewer});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  EXPECT_EQ(Ctl({"agents", "list"}, viewer).exit_code, 0);
  RunResult denied = Ctl({"tokens", "create"}, viewer);
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(denied.err, "role viewer")) << denied.err;
}

// The agent counts itself accepted on the Welcome (only then does it re-send outcomes the
// controller has not acknowledged and reset its backoff), so the controller must send one even
// when it has no settings for the agent (no --scan-interval).
TEST_F(FleetTest, TheFirstAnswerToAHelloIsAWelcomeEvenWithoutSettings) {
  LabHost host(dir_ + "/w", "w.corp.example");
  Process& agent = StartAgent(host, CreateToken());
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 1; }, absl::Seconds(60)));
  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.Wait(absl::Seconds(30)), 0);
  const std::string state = host.root() + "-agent/";
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadText(state + "ca.pem");
  ssl.pem_cert_chain = ReadText(state + "identity.pem");
  ssl.pem_private_key = ReadText(state + "identity.key");
  auto stub = certfleet::v1::AgentGateway::NewStub(
      grpc::CreateChannel(address_, grpc::SslCredentials(ssl)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->Connect(&ctx);
  certfleet::v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(
      std::string(absl::StripAsciiWhitespace(ReadText(state + "agent_id"))));
  hello.mutable_hello()->set_platform("lab");
  ASSERT_TRUE(stream->Write(hello));
  certfleet::v1::ControllerMessage first;
  ASSERT_TRUE(stream->Read(&first)) << controller_->Log();
  EXPECT_TRUE(first.has_welcome()) << first.DebugString();
  ctx.TryCancel();
}

TEST_F(FleetTest, AgentsComeBackAfterTheControllerRestarts) {
  LabHost a(dir_ + "/a", "a.corp.example");
  LabHost b(dir_ + "/b", "b.corp.example");
  StartAgent(a, CreateToken());
  StartAgent(b, CreateToken());
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 2; }, absl::Seconds(60)));

  controller_->Signal(SIGTERM);
  ASSERT_EQ(controller_->Wait(absl::Seconds(30)), 0) << controller_->Log();
  StartController(address_);
  EXPECT_TRUE(WaitFor([&] { return ConnectedCount() == 2; }, absl::Seconds(60)))
      << controller_->Log();
  // Enrollment survived: the agents reused their identities (no token was given this time).
  for (auto& agent : agents_) EXPECT_TRUE(agent->Running());

  // Agents stop cleanly on SIGTERM.
  for (auto& agent : agents_) {
    agent->Signal(SIGTERM);
    EXPECT_EQ(agent->Wait(absl::Seconds(30)), 0) << agent->Log();
  }
}

TEST_F(FleetTest, BadInputGetsAClearError) {
  RunResult unreachable = RunCommand({CERTFLEETCTL_BIN, "agents", "list", "--controller",
                                      "127.0.0.1:1", "--credentials", admin_dir()});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unreachable.err, "cannot reach the controller")) << unreachable.err;

  RunResult no_creds = Ctl({"agents", "list"}, dir_ + "/missing");
  EXPECT_EQ(no_creds.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(no_creds.err, "credentials directory")) << no_creds.err;

  RunResult bad_flag = RunCommand({CERTFLEETCTL_BIN, "agents", "list", "--frobnicate"});
  EXPECT_NE(bad_flag.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad_flag.err + bad_flag.out, "frobnicate"));

  RunResult bad_duration = Ctl({"certs", "list", "--expiring-within", "soonish"});
  EXPECT_EQ(bad_duration.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad_duration.err, "soonish"));

  RunResult bad_code = Ctl({"certs", "list", "--problem", "NOPE"});
  EXPECT_EQ(bad_code.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad_code.err, "NOPE"));

  RunResult agent_flag = RunCommand({CERTFLEET_AGENT_BIN, "--bogus"});
  EXPECT_NE(agent_flag.exit_code, 0);

  RunResult not_enrolled = RunCommand({CERTFLEET_AGENT_BIN, "--controller", address_, "--state-dir",
                                       dir_ + "/empty-agent", "--lab-root", dir_ + "/empty-host",
                                       "--fqdn", "x.corp.example"});
  EXPECT_EQ(not_enrolled.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(not_enrolled.err, "not enrolled")) << not_enrolled.err;
}

}  // namespace
}  // namespace certfleet::testing
