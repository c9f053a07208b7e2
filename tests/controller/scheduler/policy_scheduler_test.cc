// PolicyScheduler over a real controller and a simulated fleet (the campaigns' FleetHarness): a
// SqliteStore, the Fleet, the CommandService, the builtin issuer, the RenewalService, the
// AuditLog, the CampaignService and a RecordingNotifier, on a FakeClock that starts at midnight
// UTC. Each test calls Pass() itself; the renewals it starts run on the controller's executor
// and the simulated agents answer them. Every wait is bounded.

#include "controller/scheduler/policy_scheduler.h"

#include <map>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/model/renewal.h"
#include "controller/policy/maintenance_window.h"
#include "controller/policy/renewal_timing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/campaigns/fleet_harness.h"

namespace certfleet::common::model {

inline void PrintTo(RenewalState state, std::ostream* os) { *os << RenewalStateName(state); }

}  // namespace certfleet::common::model

namespace certfleet::controller::scheduler {
namespace {

using ::certfleet::testing::FakeCert;
using ::certfleet::testing::FleetHarness;
using ::certfleet::testing::HostSpec;
using ::certfleet::testing::SimCert;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
namespace model = common::model;
using model::RenewalState;

constexpr absl::Duration kDay = absl::Hours(24);

std::string AgentId(int i) { return absl::StrFormat("agent-%02d", i); }
std::string Fqdn(int i) { return absl::StrFormat("host%02d.corp.example.com", i); }

config::PolicyConfig Policy(std::string name, std::map<std::string, std::string> selector = {}) {
  config::PolicyConfig p;
  p.name = std::move(name);
  p.selector = std::move(selector);
  return p;
}

config::WindowConfig Window(std::string name, absl::string_view spec, bool hard) {
  auto window = policy::ParseMaintenanceWindow(spec);
  EXPECT_TRUE(window.ok()) << window.status();
  config::WindowConfig w;
  w.name = std::move(name);
  w.window = window.ok() ? *window : policy::MaintenanceWindow{};
  w.hard = hard;
  return w;
}

// The job id the scheduler derives for an attempt on a bound certificate.
std::string PolicyJobId(const std::string& agent, const SimCert& bound, int failures) {
  return absl::StrCat("pol.", agent, ".", bound.thumbprint.substr(0, 12), ".", failures);
}

class PolicySchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.Boot().ok()); }

  // Adds hosts 0..n-1 (agent-ii, hostii.corp.example.com, role=web for even i and role=db for
  // odd i) with a one-year certificate that expires in 60 days: due under the default timing.
  void AddHosts(int n, const std::function<void(int, HostSpec&)>& tweak = {}) {
    for (int i = 0; i < n; ++i) {
      HostSpec spec;
      spec.id = AgentId(i);
      spec.fqdn = Fqdn(i);
      spec.labels = {{"role", i % 2 == 0 ? "web" : "db"}};
      if (tweak) tweak(i, spec);
      absl::Status s = h_.AddHost(spec);
      ASSERT_TRUE(s.ok()) << s;
    }
  }

  PassResult MustPass() {
    absl::StatusOr<PassResult> pass = h_.scheduler().Pass();
    EXPECT_TRUE(pass.ok()) << pass.status();
    return pass.ok() ? *pass : PassResult{};
  }

  std::vector<store::RenewalRecord> RenewalsOf(const std::string& agent) {
    store::RenewalFilter filter;
    filter.agent_id = agent;
    auto r = h_.store().ListRenewals(filter);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<store::RenewalRecord>{};
  }

  std::vector<std::string> AgentsWithRenewals(int hosts) {
    std::vector<std::string> agents;
    for (int i = 0; i < hosts; ++i) {
      if (!RenewalsOf(AgentId(i)).empty()) agents.push_back(AgentId(i));
    }
    return agents;
  }

  bool WaitForRenewal(const std::string& id, RenewalState state) {
    return h_.WaitUntil([&] {
      auto r = h_.store().GetRenewal(id);
      return r.ok() && r->state == state;
    });
  }

  std::vector<store::CommandRecord> CommandsOf(const std::string& agent) {
    store::CommandFilter filter;
    filter.agent_id = agent;
    auto c = h_.store().ListCommands(filter);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : std::vector<store::CommandRecord>{};
  }

  std::vector<store::AuditRecord> AuditOf(absl::string_view action) {
    auto all = h_.audit().List(store::AuditFilter{});
    EXPECT_TRUE(all.ok()) << all.status();
    std::vector<store::AuditRecord> matching;
    if (!all.ok()) return matching;
    for (const auto& e : *all) {
      if (e.action == action) matching.push_back(e);
    }
    return matching;
  }

  // A host whose bound certificate (valid for `lifetime`) is due exactly `in` from now under
  // `timing`, jitter included.
  HostSpec DueIn(int i, absl::Duration lifetime, absl::Duration in,
                 const policy::RenewalTiming& timing, absl::Duration* due_after_not_before) {
    const absl::Time epoch = absl::UnixEpoch();
    const std::string id = AgentId(i);
    SimCert probe = FakeCert(absl::StrCat(id, "/cert"), epoch, epoch + lifetime);
    // Due times do not depend on where the lifetime lies: measure from an arbitrary start.
    *due_after_not_before = policy::RenewalDueAt(epoch, epoch + lifetime, timing,
                                                 absl::StrCat(id, "/", probe.thumbprint)) -
                            epoch;
    const absl::Time not_before = h_.clock().Now() + in - *due_after_not_before;
    HostSpec spec;
    spec.id = id;
    spec.fqdn = Fqdn(i);
    spec.bound_cert = FakeCert(absl::StrCat(id, "/cert"), not_before, not_before + lifetime);
    return spec;
  }

  FleetHarness h_;
};

// --- Which agents a policy covers ---

TEST_F(PolicySchedulerTest, WithoutAPolicyNothingIsRenewed) {
  AddHosts(3);
  PassResult pass = MustPass();
  EXPECT_EQ(pass.agents, 3);
  EXPECT_EQ(pass.due, 0);
  EXPECT_EQ(pass.started, 0);
  EXPECT_THAT(AgentsWithRenewals(3), IsEmpty());
}

TEST_F(PolicySchedulerTest, PolicyWithASelectorCoversOnlyTheAgentsItMatches) {
  h_.config().policies = {Policy("web", {{"role", "web"}})};
  AddHosts(4);
  PassResult pass = MustPass();
  EXPECT_EQ(pass.due, 2);
  EXPECT_EQ(pass.started, 2);
  EXPECT_THAT(AgentsWithRenewals(4), ElementsAre(AgentId(0), AgentId(2)));
  const store::RenewalRecord job = RenewalsOf(AgentId(0))[0];
  EXPECT_EQ(job.created_by, "policy/web");
  EXPECT_EQ(job.id, PolicyJobId(AgentId(0), *h_.host(AgentId(0)).bound, 0));
  ASSERT_TRUE(WaitForRenewal(job.id, RenewalState::kDone));
}

TEST_F(PolicySchedulerTest, DisabledPolicyIsIgnoredAndTheFirstMatchingPolicyWins) {
  config::PolicyConfig disabled = Policy("frozen");
  disabled.enabled = false;
  h_.config().policies = {disabled, Policy("web", {{"role", "web"}}), Policy("everyone")};
  AddHosts(2);
  PassResult pass = MustPass();
  EXPECT_EQ(pass.started, 2);
  ASSERT_THAT(RenewalsOf(AgentId(0)), SizeIs(1));
  ASSERT_THAT(RenewalsOf(AgentId(1)), SizeIs(1));
  EXPECT_EQ(RenewalsOf(AgentId(0))[0].created_by, "policy/web");
  EXPECT_EQ(RenewalsOf(AgentId(1))[0].created_by, "policy/everyone");
  auto state = h_.store().GetPolicyState(AgentId(1));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->policy, "everyone");
}

TEST_F(PolicySchedulerTest, OfflineAgentIsNotStarted) {
  h_.config().policies = {Policy("everyone")};
  AddHosts(2, [](int i, HostSpec& spec) { spec.online = i == 0; });
  PassResult pass = MustPass();
  EXPECT_EQ(pass.due, 2);
  EXPECT_EQ(pass.started, 1);
  EXPECT_THAT(AgentsWithRenewals(2), ElementsAre(AgentId(0)));
}

// --- When a certificate is due ---

TEST_F(PolicySchedulerTest, OneYearCertificateIsDueAtTwoThirdsOfItsLifetimeMinusJitter) {
  h_.config().policies = {Policy("everyone")};
  const policy::RenewalTiming timing = h_.config().policies[0].timing;
  absl::Duration due_after = absl::ZeroDuration();
  HostSpec spec = DueIn(0, 365 * kDay, absl::Hours(1), timing, &due_after);
  ASSERT_TRUE(h_.AddHost(spec).ok());
  const absl::Duration two_thirds = 365 * kDay * 2 / 3;
  EXPECT_LE(due_after, two_thirds);
  EXPECT_GT(due_after, two_thirds - absl::Hours(24));

  EXPECT_EQ(MustPass().due, 0);
  h_.clock().Advance(absl::Hours(1) - absl::Seconds(1));
  EXPECT_EQ(MustPass().started, 0);
  EXPECT_THAT(RenewalsOf(AgentId(0)), IsEmpty());

  h_.clock().Advance(absl::Seconds(1));
  PassResult pass = MustPass();
  EXPECT_EQ(pass.due, 1);
  EXPECT_EQ(pass.started, 1);
  std::vector<store::AuditRecord> started = AuditOf("policy.renewal.start");
  ASSERT_THAT(started, SizeIs(1));
  EXPECT_EQ(started[0].actor, "controller");
  EXPECT_EQ(started[0].target, Fqdn(0));
  EXPECT_THAT(started[0].details,
              AllOf(HasSubstr("\"rule\":\"lifetime fraction\""), HasSubstr("\"attempt\":\"1\""),
                    HasSubstr("\"policy\":\"everyone\"")));
}

TEST_F(PolicySchedulerTest, SixtyDayCertificateIsDueItsLeadTimeBeforeExpiry) {
  h_.config().policies = {Policy("everyone")};
  const policy::RenewalTiming timing = h_.config().policies[0].timing;
  absl::Duration due_after = absl::ZeroDuration();
  HostSpec spec = DueIn(0, 60 * kDay, absl::Hours(1), timing, &due_after);
  ASSERT_TRUE(h_.AddHost(spec).ok());
  // 60 days - 30 days lead = 30 days (before 2/3 of the lifetime, 40 days), minus jitter.
  EXPECT_LE(due_after, 30 * kDay);
  EXPECT_GT(due_after, 30 * kDay - absl::Hours(24));

  h_.clock().Advance(absl::Hours(1) - absl::Seconds(1));
  EXPECT_EQ(MustPass().started, 0);
  h_.clock().Advance(absl::Seconds(1));
  EXPECT_EQ(MustPass().started, 1);
  std::vector<store::AuditRecord> started = AuditOf("policy.renewal.start");
  ASSERT_THAT(started, SizeIs(1));
  EXPECT_THAT(started[0].details, HasSubstr("\"rule\":\"lead time\""));
}

// --- Rate budgets, backoff ---

TEST_F(PolicySchedulerTest, RateBudgetGoesToTheClosestExpiryFirstAndTheRestAsItRefills) {
  h_.config().policies = {Policy("everyone")};
  const int expires_in_days[] = {20, 10, 40, 30, 50};
  AddHosts(5, [&](int i, HostSpec& spec) { spec.expires_in = expires_in_days[i] * kDay; });
  h_.budgets().Set("builtin", /*per_hour=*/1, /*burst=*/2);

  PassResult first = MustPass();
  EXPECT_EQ(first.due, 5);
  EXPECT_EQ(first.started, 2);
  EXPECT_EQ(first.waiting_budget, 3);
  EXPECT_THAT(AgentsWithRenewals(5), ElementsAre(AgentId(0), AgentId(1)));

  h_.clock().Advance(absl::Minutes(59));
  EXPECT_EQ(MustPass().started, 0);
  h_.clock().Advance(absl::Minutes(1));
  PassResult second = MustPass();
  EXPECT_EQ(second.started, 1);
  EXPECT_EQ(second.waiting_budget, 2);
  EXPECT_THAT(AgentsWithRenewals(5), ElementsAre(AgentId(0), AgentId(1), AgentId(3)));

  h_.clock().Advance(absl::Hours(1));
  EXPECT_EQ(MustPass().started, 1);
  h_.clock().Advance(absl::Hours(1));
  EXPECT_EQ(MustPass().started, 1);
  EXPECT_THAT(AgentsWithRenewals(5), SizeIs(5));
  for (int i = 0; i < 5; ++i) EXPECT_THAT(RenewalsOf(AgentId(i)), SizeIs(1)) << AgentId(i);
}

TEST_F(PolicySchedulerTest, FailedRenewalIsRetriedAfterTheBackoffAndASuccessIsNotRepeated) {
  h_.config().policies = {Policy("everyone")};
  h_.config().retry = {.initial = absl::Minutes(5), .max = absl::Hours(6)};
  AddHosts(1, [](int, HostSpec& spec) { spec.failing = true; });
  const std::string agent = AgentId(0);
  const SimCert bound = *h_.host(agent).bound;

  ASSERT_EQ(MustPass().started, 1);
  const std::string first = PolicyJobId(agent, bound, 0);
  ASSERT_TRUE(WaitForRenewal(first, RenewalState::kRolledBack));

  PassResult backing_off = MustPass();
  EXPECT_EQ(backing_off.started, 0);
  EXPECT_EQ(backing_off.waiting_backoff, 1);
  auto state = h_.store().GetPolicyState(agent);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->failures, 1);
  EXPECT_EQ(state->next_attempt_at, h_.clock().Now() + absl::Minutes(5));
  h_.clock().Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_EQ(MustPass().waiting_backoff, 1);

  h_.agents().SetFailing(agent, false);
  h_.clock().Advance(absl::Seconds(1));
  ASSERT_EQ(MustPass().started, 1);
  const std::string second = PolicyJobId(agent, bound, 1);
  ASSERT_TRUE(WaitForRenewal(second, RenewalState::kDone));

  // The inventory still shows the old certificate (no scan yet): it is not due again.
  h_.clock().Advance(absl::Hours(1));
  PassResult after = MustPass();
  EXPECT_EQ(after.due, 0);
  EXPECT_EQ(after.started, 0);
  EXPECT_THAT(RenewalsOf(agent), SizeIs(2));
  state = h_.store().GetPolicyState(agent);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->failures, 0);
  EXPECT_EQ(state->from_thumbprint, bound.thumbprint);
}

TEST_F(PolicySchedulerTest, FailuresBackOffExponentiallyUpToTheMaximum) {
  h_.config().policies = {Policy("everyone")};
  h_.config().retry = {.initial = absl::Minutes(5), .max = absl::Minutes(12)};
  AddHosts(1, [](int, HostSpec& spec) { spec.failing = true; });
  const std::string agent = AgentId(0);
  const SimCert bound = *h_.host(agent).bound;
  const absl::Duration expected[] = {absl::Minutes(5), absl::Minutes(10), absl::Minutes(12)};
  for (int attempt = 0; attempt < 3; ++attempt) {
    SCOPED_TRACE(attempt);
    ASSERT_EQ(MustPass().started, 1);
    ASSERT_TRUE(WaitForRenewal(PolicyJobId(agent, bound, attempt), RenewalState::kRolledBack));
    EXPECT_EQ(MustPass().waiting_backoff, 1);
    auto state = h_.store().GetPolicyState(agent);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->next_attempt_at - h_.clock().Now(), expected[attempt]);
    h_.clock().Advance(expected[attempt]);
  }
}

// --- Windows, campaigns ---

TEST_F(PolicySchedulerTest, DueHostWaitsForItsClosedHardWindow) {
  h_.config().windows = {Window("nights", "* 02:00-04:00 UTC", /*hard=*/true)};
  config::PolicyConfig p = Policy("everyone");
  p.window = "nights";
  h_.config().policies = {p};
  AddHosts(1, [](int, HostSpec& spec) { spec.expires_in = absl::Hours(20); });

  PassResult closed = MustPass();  // 00:00 UTC
  EXPECT_EQ(closed.due, 1);
  EXPECT_EQ(closed.waiting_window, 1);
  EXPECT_EQ(closed.started, 0);
  h_.clock().Advance(absl::Hours(2));
  PassResult open = MustPass();
  EXPECT_EQ(open.waiting_window, 0);
  EXPECT_EQ(open.started, 1);
}

TEST_F(PolicySchedulerTest, SoftWindowGivesWayOnlyToACertificateThatExpiresBeforeItOpens) {
  h_.config().windows = {Window("nights", "* 02:00-04:00 UTC", /*hard=*/false)};
  config::PolicyConfig p = Policy("everyone");
  p.window = "nights";
  h_.config().policies = {p};
  AddHosts(2,
           [](int i, HostSpec& spec) { spec.expires_in = i == 0 ? absl::Hours(20) : 20 * kDay; });
  PassResult pass = MustPass();
  EXPECT_EQ(pass.due, 2);
  EXPECT_EQ(pass.started, 1);
  EXPECT_EQ(pass.waiting_window, 1);
  EXPECT_THAT(AgentsWithRenewals(2), ElementsAre(AgentId(0)));
}

TEST_F(PolicySchedulerTest, AgentsOfARunningCampaignAreLeftToTheCampaign) {
  h_.config().policies = {Policy("everyone")};
  AddHosts(3);
  // The campaign's job of host 0 is under way (its agent has not answered yet); host 2 waits
  // for its wave.
  h_.agents().Hold(
      [](const std::string& agent, const model::Command&) { return agent == AgentId(0); });
  campaigns::CreateCampaignRequest request;
  request.name = "web";
  request.spec.labels = {{"role", "web"}};
  request.spec.waves = "1,100%";
  request.created_by = "operator/admin/alice";
  auto created = h_.campaigns().Create(request);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string id = created->campaign.id;
  ASSERT_TRUE(h_.campaigns().Start(id, "operator/admin/alice").ok());
  ASSERT_TRUE(h_.WaitUntil([&] { return !RenewalsOf(AgentId(0)).empty(); }));

  PassResult pass = MustPass();
  EXPECT_EQ(pass.due, 1);
  EXPECT_EQ(pass.started, 1);
  EXPECT_THAT(AgentsWithRenewals(3), ElementsAre(AgentId(0), AgentId(1)));
  EXPECT_EQ(RenewalsOf(AgentId(0))[0].created_by, absl::StrCat("campaign/", id));
  EXPECT_EQ(h_.store().GetPolicyState(AgentId(0)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(h_.store().GetPolicyState(AgentId(2)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PolicySchedulerTest, AgentsOfAPlannedCampaignAreLeftToTheCampaign) {
  h_.config().policies = {Policy("everyone")};
  AddHosts(2);
  campaigns::CreateCampaignRequest request;
  request.name = "web";
  request.spec.labels = {{"role", "web"}};
  request.created_by = "operator/admin/alice";
  ASSERT_TRUE(h_.campaigns().Create(request).ok());  // planned: host 0 is pending in it

  PassResult pass = MustPass();
  EXPECT_EQ(pass.started, 1);
  EXPECT_THAT(AgentsWithRenewals(2), ElementsAre(AgentId(1)));
}

// --- Notifications ---

TEST_F(PolicySchedulerTest, ExpiryIsNotifiedOncePerThresholdAcrossPassesAndRestarts) {
  AddHosts(1, [](int, HostSpec& spec) { spec.expires_in = 31 * kDay; });
  const SimCert bound = *h_.host(AgentId(0)).bound;
  EXPECT_EQ(MustPass().notifications, 0);

  h_.clock().Advance(kDay);  // 30 days left
  EXPECT_EQ(MustPass().notifications, 1);
  EXPECT_EQ(MustPass().notifications, 0);
  h_.clock().Advance(23 * kDay);  // 7 days left: 14d was never seen on a pass
  EXPECT_EQ(MustPass().notifications, 1);
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(MustPass().notifications, 0);

  std::vector<notify::Event> events = h_.notifier().EventsOfType(notify::kCertificateExpiring);
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].fields.at("threshold"), "30d");
  EXPECT_EQ(events[1].fields.at("threshold"), "7d");
  EXPECT_EQ(events[0].subject, Fqdn(0));
  EXPECT_EQ(events[0].fields.at("agent_id"), AgentId(0));
  EXPECT_EQ(events[0].fields.at("thumbprint"), bound.thumbprint);
  EXPECT_THAT(events[1].summary, HasSubstr(Fqdn(0)));
}

TEST_F(PolicySchedulerTest, DriftIsNotifiedOncePerBinding) {
  AddHosts(1, [](int, HostSpec& spec) {
    spec.expires_in = 300 * kDay;
    spec.drift = {"RENEWED_NOT_ACTIVE"};
  });
  const SimCert bound = *h_.host(AgentId(0)).bound;
  EXPECT_EQ(MustPass().notifications, 1);
  EXPECT_EQ(MustPass().notifications, 0);
  ASSERT_TRUE(h_.Restart().ok());
  EXPECT_EQ(MustPass().notifications, 0);

  // The binding changes (and still drifts): a new notification.
  SimCert other = FakeCert("other", bound.not_before, bound.not_after);
  ASSERT_TRUE(
      h_.ReportInventory(AgentId(0), {bound, other}, other.channel_serial, {"RENEWED_NOT_ACTIVE"})
          .ok());
  EXPECT_EQ(MustPass().notifications, 1);
  std::vector<notify::Event> events = h_.notifier().EventsOfType(notify::kDriftDetected);
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].fields.at("code"), "RENEWED_NOT_ACTIVE");
  EXPECT_EQ(events[0].fields.at("channel_serial"), bound.channel_serial);
  EXPECT_EQ(events[1].fields.at("channel_serial"), other.channel_serial);
}

// --- Drift remediation ---

class DriftRemediationTest : public PolicySchedulerTest {
 protected:
  // Host 0 is bound to a certificate that is not due; My also holds a newer compliant one and
  // a still newer one with a problem. The inventory reports RENEWED_NOT_ACTIVE.
  void AddDriftingHost() {
    const absl::Time now = h_.clock().Now();
    newer_ = FakeCert("newer", now - kDay, now + 700 * kDay);
    broken_ = FakeCert("broken", now - kDay, now + 800 * kDay);
    broken_.problems = {"NO_PRIVATE_KEY"};
    AddHosts(1, [&](int, HostSpec& spec) {
      spec.expires_in = 300 * kDay;
      spec.drift = {"RENEWED_NOT_ACTIVE"};
      spec.more = {newer_, broken_};
    });
  }

  SimCert newer_;
  SimCert broken_;
};

TEST_F(DriftRemediationTest, RebindPolicyRebindsOnceToTheNewestCompliantCertificate) {
  config::PolicyConfig p = Policy("everyone");
  p.drift_rebind = true;
  h_.config().policies = {p};
  AddDriftingHost();
  const std::string agent = AgentId(0);
  h_.agents().Hold([](const std::string&, const model::Command&) { return true; });

  PassResult pass = MustPass();
  EXPECT_EQ(pass.remediations, 1);
  EXPECT_EQ(pass.started, 0);
  const std::string command_id = absl::StrCat("drift.", agent, ".", newer_.thumbprint);
  std::vector<store::CommandRecord> commands = CommandsOf(agent);
  ASSERT_THAT(commands, SizeIs(1));
  EXPECT_EQ(commands[0].command.id, command_id);
  EXPECT_EQ(commands[0].created_by, "policy/everyone");
  const auto* rebind = std::get_if<model::RebindPayload>(&commands[0].command.payload);
  ASSERT_NE(rebind, nullptr);
  EXPECT_EQ(rebind->thumbprint, newer_.thumbprint);
  std::vector<store::AuditRecord> audited = AuditOf("policy.drift.rebind");
  ASSERT_THAT(audited, SizeIs(1));
  EXPECT_EQ(audited[0].target, Fqdn(0));
  EXPECT_THAT(audited[0].details, AllOf(HasSubstr(newer_.thumbprint), HasSubstr(command_id)));

  // While the fix runs, and after it ended (before the next scan), nothing more is sent.
  h_.clock().Advance(absl::Minutes(1));
  EXPECT_EQ(MustPass().remediations, 0);
  h_.agents().Release();
  ASSERT_TRUE(h_.WaitUntil([&] {
    auto c = h_.store().GetCommand(command_id);
    return c.ok() && c->state == model::CommandState::kSucceeded;
  }));
  EXPECT_EQ(h_.agents().BoundChannelSerial(agent), newer_.channel_serial);
  for (int i = 0; i < 2; ++i) {
    h_.clock().Advance(absl::Minutes(1));
    EXPECT_EQ(MustPass().remediations, 0);
  }
  EXPECT_THAT(CommandsOf(agent), SizeIs(1));
  EXPECT_THAT(AuditOf("policy.drift.rebind"), SizeIs(1));
  EXPECT_THAT(RenewalsOf(agent), IsEmpty());
}

TEST_F(PolicySchedulerTest, BindingThatPointsAtNothingIsReboundToTheCompliantCertificate) {
  config::PolicyConfig p = Policy("everyone");
  p.drift_rebind = true;
  h_.config().policies = {p};
  const absl::Time now = h_.clock().Now();
  const SimCert spare = FakeCert("spare", now - kDay, now + 300 * kDay);
  AddHosts(1, [&](int, HostSpec& spec) {
    spec.unbound = true;
    spec.drift = {"BINDING_NOT_FOUND"};
    spec.more = {spare};
  });
  PassResult pass = MustPass();
  EXPECT_EQ(pass.remediations, 1);
  std::vector<store::CommandRecord> commands = CommandsOf(AgentId(0));
  ASSERT_THAT(commands, SizeIs(1));
  const auto* rebind = std::get_if<model::RebindPayload>(&commands[0].command.payload);
  ASSERT_NE(rebind, nullptr);
  EXPECT_EQ(rebind->thumbprint, spare.thumbprint);
}

TEST_F(DriftRemediationTest, ReportPolicyOnlyNotifiesTheDrift) {
  h_.config().policies = {Policy("everyone")};  // drift: report
  AddDriftingHost();
  PassResult pass = MustPass();
  EXPECT_EQ(pass.remediations, 0);
  EXPECT_EQ(pass.notifications, 1);
  EXPECT_THAT(CommandsOf(AgentId(0)), IsEmpty());
  EXPECT_THAT(AuditOf("policy.drift.rebind"), IsEmpty());
  EXPECT_THAT(h_.notifier().EventsOfType(notify::kDriftDetected), SizeIs(1));
}

// --- Restarts ---

TEST_F(PolicySchedulerTest, RestartBetweenStoringTheAttemptAndStartingItStartsTheJobOnce) {
  h_.config().policies = {Policy("everyone")};
  AddHosts(1);
  const std::string agent = AgentId(0);
  const SimCert bound = *h_.host(agent).bound;
  // What a controller killed after PutPolicyState and before RenewalService::Start leaves.
  store::PolicyStateRecord state;
  state.agent_id = agent;
  state.policy = "everyone";
  state.last_renewal_id = PolicyJobId(agent, bound, 0);
  state.from_thumbprint = bound.thumbprint;
  state.updated_at = h_.clock().Now();
  ASSERT_TRUE(h_.store().PutPolicyState(state).ok());

  ASSERT_TRUE(h_.Restart().ok());
  h_.clock().Advance(absl::Seconds(30));
  MustPass();
  h_.clock().Advance(absl::Seconds(30));
  MustPass();
  std::vector<store::RenewalRecord> jobs = RenewalsOf(agent);
  ASSERT_THAT(jobs, SizeIs(1));
  EXPECT_EQ(jobs[0].id, PolicyJobId(agent, bound, 0));
  ASSERT_TRUE(WaitForRenewal(jobs[0].id, RenewalState::kDone));
  h_.clock().Advance(absl::Seconds(30));
  EXPECT_EQ(MustPass().started, 0);
  EXPECT_THAT(RenewalsOf(agent), SizeIs(1));
}

TEST_F(PolicySchedulerTest, RestartWhileAJobRunsDoesNotStartASecondOne) {
  h_.config().policies = {Policy("everyone")};
  AddHosts(1);
  const std::string agent = AgentId(0);
  h_.agents().Hold([](const std::string&, const model::Command&) { return true; });
  ASSERT_EQ(MustPass().started, 1);
  ASSERT_TRUE(h_.Restart().ok());  // the held commands are re-sent, and answered
  h_.clock().Advance(absl::Seconds(30));
  EXPECT_EQ(MustPass().started, 0);
  const std::string id = PolicyJobId(agent, *h_.host(agent).bound, 0);
  ASSERT_TRUE(WaitForRenewal(id, RenewalState::kDone));
  h_.clock().Advance(absl::Seconds(30));
  EXPECT_EQ(MustPass().started, 0);
  EXPECT_THAT(RenewalsOf(agent), SizeIs(1));
  auto issued = h_.store().ListIssuances(id);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_THAT(*issued, SizeIs(1));
}

}  // namespace
}  // namespace certfleet::controller::scheduler
