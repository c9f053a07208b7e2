// CampaignService over a real controller and a simulated fleet (fleet_harness.h): a SqliteStore,
// the Fleet, the CommandService, the builtin issuer, the RenewalService and the AuditLog on a
// FakeClock, with agents that answer every command on a thread of their own. A campaign moves
// by itself while its hosts' jobs end (the renewal state listener drives it); soak, deadlines
// and windows move only with the FakeClock and an explicit Tick. Every wait is bounded.

#include "controller/campaigns/campaign_service.h"

#include <algorithm>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/model/campaign.h"
#include "common/model/command.h"
#include "common/model/renewal.h"
#include "controller/policy/maintenance_window.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/campaigns/fleet_harness.h"

namespace certfleet::common::model {

// Failure messages name the states instead of printing their bytes.
inline void PrintTo(CampaignState state, std::ostream* os) { *os << CampaignStateName(state); }
inline void PrintTo(TargetState state, std::ostream* os) { *os << TargetStateName(state); }
inline void PrintTo(RenewalState state, std::ostream* os) { *os << RenewalStateName(state); }

}  // namespace certfleet::common::model

namespace certfleet::controller::campaigns {
namespace {

using ::certfleet::testing::FleetHarness;
using ::certfleet::testing::HostSpec;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
namespace model = common::model;
using model::CampaignState;
using model::RenewalState;
using model::TargetState;

constexpr absl::Duration kDay = absl::Hours(24);

std::string AgentId(int i) { return absl::StrFormat("agent-%02d", i); }
std::string Fqdn(int i) { return absl::StrFormat("host%02d.corp.example.com", i); }

HostSpec Host(std::string id, std::string fqdn) {
  HostSpec spec;
  spec.id = std::move(id);
  spec.fqdn = std::move(fqdn);
  return spec;
}

// A host with no bound certificate and no binding.
HostSpec Unbound(std::string id, std::string fqdn) {
  HostSpec spec = Host(std::move(id), std::move(fqdn));
  spec.unbound = true;
  return spec;
}

bool IsRebind(const model::Command& command) {
  return std::holds_alternative<model::RebindPayload>(command.payload);
}

class CampaignServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.Boot().ok()); }

  // Adds hosts 0..n-1: host i is agent-ii / hostii.corp.example.com, its bound certificate
  // expires in 10 + i days (so it is the i-th target of a campaign over all of them), labels
  // role=web for even i and role=db for odd i. `tweak` changes a host's spec first.
  void AddHosts(int n, const std::function<void(int, HostSpec&)>& tweak = {}) {
    for (int i = 0; i < n; ++i) {
      HostSpec spec;
      spec.id = AgentId(i);
      spec.fqdn = Fqdn(i);
      spec.labels = {{"role", i % 2 == 0 ? "web" : "db"}};
      spec.expires_in = (10 + i) * kDay;
      if (tweak) tweak(i, spec);
      absl::Status s = h_.AddHost(spec);
      ASSERT_TRUE(s.ok()) << s;
    }
  }

  static CreateCampaignRequest Request(const store::CampaignSpec& spec) {
    CreateCampaignRequest request;
    request.name = "renew-2025";
    request.spec = spec;
    request.created_by = "operator/admin/alice";
    return request;
  }

  // Creates a campaign that must be accepted; returns its id ("" after a failure).
  std::string MustCreate(const store::CampaignSpec& spec) {
    absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? view->campaign.id : "";
  }

  std::string MustCreateAndStart(const store::CampaignSpec& spec) {
    const std::string id = MustCreate(spec);
    absl::StatusOr<CampaignView> started = campaigns().Start(id, "operator/admin/alice");
    EXPECT_TRUE(started.ok()) << started.status();
    return id;
  }

  CampaignService& campaigns() { return h_.campaigns(); }

  store::CampaignRecord Campaign(const std::string& id) {
    auto c = h_.store().GetCampaign(id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : store::CampaignRecord{};
  }

  std::vector<store::CampaignTargetRecord> Targets(const std::string& id) {
    auto t = h_.store().ListCampaignTargets(id);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::vector<store::CampaignTargetRecord>{};
  }

  std::map<std::string, TargetState> TargetStates(const std::string& id) {
    std::map<std::string, TargetState> states;
    for (const auto& t : Targets(id)) states[t.agent_id] = t.state;
    return states;
  }

  TargetState TargetStateOf(const std::string& id, const std::string& agent) {
    return TargetStates(id)[agent];
  }

  // "halted (reason); agent-00 succeeded, agent-01 running, ..." for failure messages.
  std::string Describe(const std::string& id) {
    auto c = h_.store().GetCampaign(id);
    if (!c.ok()) return c.status().ToString();
    std::string text = absl::StrCat(model::CampaignStateName(c->state), " wave ",
                                    c->current_wave + 1, "/", c->wave_count, " (", c->reason, ")");
    for (const auto& t : Targets(id)) {
      absl::StrAppend(&text, "; ", t.agent_id, " ", model::TargetStateName(t.state),
                      t.reason.empty() ? "" : absl::StrCat(" (", t.reason, ")"));
    }
    return text;
  }

  // Waits until campaign `id` is in `state` and no host of it is running, and then until the
  // pass that stored it is over (it audits and notifies after storing).
  bool WaitForCampaign(const std::string& id, CampaignState state) {
    return h_.WaitUntil([&] {
      auto c = h_.store().GetCampaign(id);
      if (!c.ok() || c->state != state) return false;
      for (const auto& t : Targets(id)) {
        if (t.state == TargetState::kRunning) return false;
      }
      return true;
    }) && h_.Settle();
  }

  bool WaitForTarget(const std::string& id, const std::string& agent, TargetState state) {
    return h_.WaitUntil([&] { return TargetStateOf(id, agent) == state; });
  }

  std::vector<store::RenewalRecord> RenewalsOf(const std::string& agent) {
    store::RenewalFilter filter;
    filter.agent_id = agent;
    auto r = h_.store().ListRenewals(filter);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<store::RenewalRecord>{};
  }

  // The host was renewed by campaign `id` exactly once: one job, under the derived id, done,
  // with one certificate issued for it.
  void ExpectRenewedOnce(const std::string& id, const std::string& agent) {
    SCOPED_TRACE(agent);
    std::vector<store::RenewalRecord> jobs = RenewalsOf(agent);
    ASSERT_THAT(jobs, SizeIs(1));
    EXPECT_EQ(jobs[0].id, CampaignService::RenewalIdFor(id, agent));
    EXPECT_EQ(jobs[0].state, RenewalState::kDone) << jobs[0].failure_reason;
    auto issued = h_.store().ListIssuances(jobs[0].id);
    ASSERT_TRUE(issued.ok()) << issued.status();
    EXPECT_THAT(*issued, SizeIs(1));
  }

  // Audit entries of `action` on `target`, oldest first.
  std::vector<store::AuditRecord> AuditOf(absl::string_view action, absl::string_view target) {
    auto all = h_.audit().List(store::AuditFilter{});
    EXPECT_TRUE(all.ok()) << all.status();
    std::vector<store::AuditRecord> matching;
    if (!all.ok()) return matching;
    for (const auto& e : *all) {
      if (e.action == action && e.target == target) matching.push_back(e);
    }
    return matching;
  }

  // Ticks and waits until the executor ran the passes it posted.
  void TickAndSettle() {
    campaigns().Tick();
    ASSERT_TRUE(h_.Settle());
  }

  FleetHarness h_;
};

// --- Create: the selector and the plan ---

TEST_F(CampaignServiceTest, CreateSelectsHostsWhoseLabelsAllMatch) {
  AddHosts(6);
  store::CampaignSpec spec;
  spec.labels = {{"role", "db"}};
  absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<std::string> agents;
  for (const auto& t : view->targets) agents.push_back(t.agent_id);
  EXPECT_THAT(agents, ElementsAre(AgentId(1), AgentId(3), AgentId(5)));
  EXPECT_EQ(view->campaign.state, CampaignState::kPlanned);
  EXPECT_EQ(view->campaign.created_by, "operator/admin/alice");
}

TEST_F(CampaignServiceTest, CreateSelectsHostsByCaseInsensitiveFqdnGlob) {
  AddHosts(3);
  ASSERT_TRUE(h_.AddHost(Host("gw", "gw1.DMZ.example.com")).ok());
  store::CampaignSpec spec;
  spec.fqdn_glob = "*.dmz.EXAMPLE.com";
  absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_THAT(view->targets, SizeIs(1));
  EXPECT_EQ(view->targets[0].agent_id, "gw");
}

TEST_F(CampaignServiceTest, CreateSelectsHostsWhoseBoundCertificateExpiresWithin) {
  AddHosts(5);  // expiring in 10, 11, 12, 13, 14 days
  ASSERT_TRUE(h_.AddHost(Unbound("bare", "bare.corp.example.com")).ok());
  store::CampaignSpec spec;
  spec.expiring_within = 12 * kDay;  // 10 and 11 days; 12 is not within
  absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<std::string> agents;
  for (const auto& t : view->targets) agents.push_back(t.agent_id);
  EXPECT_THAT(agents, ElementsAre(AgentId(0), AgentId(1)));
}

TEST_F(CampaignServiceTest, CreateSelectsHostsWithAProblemOnACertificateOrTheirBinding) {
  AddHosts(4, [](int i, HostSpec& spec) {
    if (i == 1) spec.bound_problems = {"NO_PRIVATE_KEY"};
    if (i == 3) spec.drift = {"NO_PRIVATE_KEY"};
    if (i == 2) spec.drift = {"RENEWED_NOT_ACTIVE"};
  });
  store::CampaignSpec spec;
  spec.problem = "NO_PRIVATE_KEY";
  absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<std::string> agents;
  for (const auto& t : view->targets) agents.push_back(t.agent_id);
  EXPECT_THAT(agents, ElementsAre(AgentId(1), AgentId(3)));
}

TEST_F(CampaignServiceTest, CreatePutsTwentyHostsInWavesEndingAtOneTwoTenAndTwenty) {
  AddHosts(20);
  store::CampaignSpec spec;
  spec.waves = "1,10%,50%,100%";
  absl::StatusOr<CampaignView> view = campaigns().Create(Request(spec));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_THAT(view->wave_ends, ElementsAre(1, 2, 10, 20));
  EXPECT_EQ(view->campaign.wave_count, 4);
  std::vector<int> waves;
  for (const auto& t : view->targets) waves.push_back(t.wave);
  EXPECT_THAT(waves, ElementsAre(0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3));
  ASSERT_THAT(view->counts, SizeIs(4));
  EXPECT_EQ(view->counts[2].at("pending"), 8);
  EXPECT_EQ(view->allowed_failures, 0);
}

TEST_F(CampaignServiceTest, CreateOrdersHostsBySoonestExpiryThenFqdnWithUnboundHostsLast) {
  const absl::Duration expiry[] = {30 * kDay, 5 * kDay, 20 * kDay, 5 * kDay};
  AddHosts(4, [&](int i, HostSpec& spec) {
    spec.expires_in = expiry[i];
    if (i == 3) spec.fqdn = "aaa.corp.example.com";  // ties with host 1, sorts first
  });
  ASSERT_TRUE(h_.AddHost(Unbound("bare", "000.corp.example.com")).ok());
  absl::StatusOr<CampaignView> view = campaigns().Create(Request({}));
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<std::string> agents;
  std::vector<int> positions;
  for (const auto& t : view->targets) {
    agents.push_back(t.agent_id);
    positions.push_back(t.position);
  }
  EXPECT_THAT(agents, ElementsAre(AgentId(3), AgentId(1), AgentId(2), AgentId(0), "bare"));
  EXPECT_THAT(positions, ElementsAre(0, 1, 2, 3, 4));
  // The plan remembers each host's certificate, for a revert.
  EXPECT_EQ(view->targets[0].previous_thumbprint, h_.host(AgentId(3)).bound->thumbprint);
  EXPECT_EQ(view->targets[0].previous_not_after, h_.host(AgentId(3)).bound->not_after);
  EXPECT_EQ(view->targets[4].previous_thumbprint, "");
}

TEST_F(CampaignServiceTest, CreateFailsWithNotFoundForAnUnknownProfileOrIssuer) {
  AddHosts(2);
  store::CampaignSpec profile;
  profile.profile = "scom-8192";
  EXPECT_EQ(campaigns().Create(Request(profile)).status().code(), absl::StatusCode::kNotFound);
  store::CampaignSpec issuer;
  issuer.issuer = "corp-ca";
  EXPECT_EQ(campaigns().Create(Request(issuer)).status().code(), absl::StatusCode::kNotFound);
  auto all = campaigns().List();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, IsEmpty());
}

TEST_F(CampaignServiceTest, CreateFailsWithInvalidArgumentForABadWaveBudgetWindowOrCap) {
  AddHosts(2);
  std::vector<std::pair<std::string, std::function<void(store::CampaignSpec&)>>> bad = {
      {"waves empty", [](auto& s) { s.waves = ""; }},
      {"waves not a number", [](auto& s) { s.waves = "1,x"; }},
      {"waves shrinking", [](auto& s) { s.waves = "10%,5%"; }},
      {"waves above 100%", [](auto& s) { s.waves = "1,150%"; }},
      {"budget negative", [](auto& s) { s.max_failures = "-1"; }},
      {"budget not a number", [](auto& s) { s.max_failures = "two"; }},
      {"window spec", [](auto& s) { s.window = "Sat 25:00-26:00"; }},
      {"max in flight 0", [](auto& s) { s.max_in_flight = 0; }},
      {"soak negative", [](auto& s) { s.soak = -absl::Minutes(1); }},
      {"offline deadline 0", [](auto& s) { s.offline_deadline = absl::ZeroDuration(); }},
  };
  for (const auto& [what, change] : bad) {
    store::CampaignSpec spec;
    change(spec);
    EXPECT_EQ(campaigns().Create(Request(spec)).status().code(), absl::StatusCode::kInvalidArgument)
        << what;
  }
  CreateCampaignRequest unnamed = Request({});
  unnamed.name = "";
  EXPECT_EQ(campaigns().Create(unnamed).status().code(), absl::StatusCode::kInvalidArgument);
}

// An unknown window name cannot be told from a malformed spec: both are InvalidArgument naming
// the text.
TEST_F(CampaignServiceTest, CreateFailsWithInvalidArgumentForAnUnknownWindowName) {
  AddHosts(2);
  store::CampaignSpec spec;
  spec.window = "weekend-nights";
  auto created = campaigns().Create(Request(spec));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(created.status().message()), HasSubstr("weekend-nights"));
}

TEST_F(CampaignServiceTest, CreateFailsWithFailedPreconditionWhenNoHostMatches) {
  AddHosts(3);
  store::CampaignSpec spec;
  spec.labels = {{"role", "gateway"}};
  EXPECT_EQ(campaigns().Create(Request(spec)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CampaignServiceTest, GetOfAnUnknownCampaignFailsWithNotFoundAndListIsOldestFirst) {
  AddHosts(2);
  EXPECT_EQ(campaigns().Get("cmp-000000000000").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(campaigns().Plan("cmp-000000000000").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(campaigns().Start("cmp-000000000000", "alice").status().code(),
            absl::StatusCode::kNotFound);
  const std::string first = MustCreate({});
  h_.clock().Advance(absl::Seconds(1));
  const std::string second = MustCreate({});
  auto all = campaigns().List();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(*all, SizeIs(2));
  EXPECT_EQ((*all)[0].id, first);
  EXPECT_EQ((*all)[1].id, second);
  auto view = campaigns().Get(first);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_THAT(view->targets, SizeIs(2));
  EXPECT_THAT(AuditOf("campaign.create", first), SizeIs(1));
}

// --- Running ---

TEST_F(CampaignServiceTest, CampaignRunsWaveByWaveWithinMaxInFlightAndCompletes) {
  AddHosts(20);
  store::CampaignSpec spec;
  spec.waves = "1,10%,50%,100%";
  spec.max_in_flight = 3;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);

  const store::CampaignRecord c = Campaign(id);
  EXPECT_EQ(c.reason, "20 of 20 host(s) renewed");
  EXPECT_EQ(c.current_wave, 4);
  ASSERT_TRUE(c.finished_at.has_value());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(TargetStateOf(id, AgentId(i)), TargetState::kSucceeded) << AgentId(i);
    ExpectRenewedOnce(id, AgentId(i));
  }

  // Wave by wave: every job of a wave ended before the first job of the next one moved.
  std::map<std::string, int> wave_of;
  for (const auto& t : Targets(id)) wave_of[t.agent_id] = t.wave;
  std::vector<int> last_end(4, -1), first_move(4, 1 << 30);
  for (const auto& e : h_.RenewalEvents()) {
    const int wave = wave_of[e.agent_id];
    first_move[wave] = std::min(first_move[wave], e.seq);
    if (model::IsTerminal(e.state)) last_end[wave] = std::max(last_end[wave], e.seq);
  }
  for (int wave = 0; wave + 1 < 4; ++wave) {
    EXPECT_LT(last_end[wave], first_move[wave + 1]) << "wave " << wave + 1;
  }
  // Never more than max_in_flight hosts at once, and the cap was reached.
  EXPECT_EQ(h_.PeakActiveRenewals(), 3);

  // The gate's evidence, per wave.
  std::vector<store::AuditRecord> promoted = AuditOf("campaign.wave.promoted", id);
  ASSERT_THAT(promoted, SizeIs(4));
  const int verified[] = {1, 1, 8, 10};
  for (int wave = 0; wave < 4; ++wave) {
    EXPECT_THAT(promoted[wave].details,
                AllOf(HasSubstr(absl::StrCat("\"wave\":\"", wave + 1, "\"")),
                      HasSubstr(absl::StrCat("\"verified_20053\":\"", verified[wave], "\"")),
                      HasSubstr("\"rolled_back\":\"0\"")))
        << "wave " << wave + 1;
  }
  EXPECT_THAT(AuditOf("campaign.start", id), SizeIs(1));
  EXPECT_THAT(AuditOf("campaign.complete", id), SizeIs(1));

  std::vector<notify::Event> finished = h_.notifier().EventsOfType(notify::kCampaignFinished);
  ASSERT_THAT(finished, SizeIs(1));
  EXPECT_EQ(finished[0].subject, id);
  EXPECT_EQ(finished[0].fields.at("state"), "completed");
  EXPECT_THAT(finished[0].summary, HasSubstr("20 of 20 host(s) renewed"));
  EXPECT_THAT(h_.notifier().EventsOfType(notify::kCampaignHalted), IsEmpty());

  // The hosts are bound to their new certificates.
  for (int i = 0; i < 20; ++i) {
    EXPECT_NE(h_.agents().BoundChannelSerial(AgentId(i)), h_.host(AgentId(i)).bound->channel_serial)
        << AgentId(i);
  }
  // A finished campaign cannot be started again.
  EXPECT_EQ(campaigns().Start(id, "alice").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CampaignServiceTest, CampaignWithoutRebindInstallsTheCertificatesAndCompletes) {
  AddHosts(3);
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.bind = false;
  const std::string id = MustCreate(spec);
  auto plan = campaigns().Plan(id);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ((*plan)[0].change, "renew via builtin (profile scom), install without rebind");
  ASSERT_TRUE(campaigns().Start(id, "alice").ok());
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 3; ++i) {
    ExpectRenewedOnce(id, AgentId(i));
    for (const model::Command& c : h_.agents().Received(AgentId(i))) {
      EXPECT_FALSE(IsRebind(c)) << c.id;
    }
    EXPECT_EQ(h_.agents().BoundChannelSerial(AgentId(i)),
              h_.host(AgentId(i)).bound->channel_serial);
  }
}

TEST_F(CampaignServiceTest, StartOfAStartedCampaignFailsWithFailedPrecondition) {
  AddHosts(2);
  h_.agents().Hold([](const std::string&, const model::Command&) { return true; });
  const std::string id = MustCreateAndStart({});
  EXPECT_EQ(campaigns().Start(id, "alice").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(campaigns().Resume(id, "alice").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(campaigns().Revert(id, "alice").status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- The failure budget ---

class CampaignHaltTest : public CampaignServiceTest {
 protected:
  // 20 hosts in waves {1, 2, 10, 20}; host 1 (the whole of wave 2) and host 12 (wave 4) fail
  // their rebind, which is rolled back. Budget 0.
  void SetUp() override {
    CampaignServiceTest::SetUp();
    AddHosts(20, [](int i, HostSpec& spec) { spec.failing = i == 1 || i == 12; });
    store::CampaignSpec spec;
    spec.waves = "1,10%,50%,100%";
    spec.max_in_flight = 4;
    spec.max_failures = "0";
    id_ = MustCreateAndStart(spec);
  }

  std::string id_;
};

TEST_F(CampaignHaltTest, FailingHostInWaveTwoHaltsTheCampaignBeforeWaveThreeStarts) {
  ASSERT_TRUE(WaitForCampaign(id_, CampaignState::kHalted)) << Describe(id_);
  ASSERT_TRUE(h_.Settle());
  const store::CampaignRecord c = Campaign(id_);
  EXPECT_EQ(c.current_wave, 1);
  EXPECT_THAT(c.reason, AllOf(HasSubstr("wave 2"), HasSubstr(Fqdn(1))));
  EXPECT_EQ(TargetStateOf(id_, AgentId(0)), TargetState::kSucceeded);
  EXPECT_EQ(TargetStateOf(id_, AgentId(1)), TargetState::kRolledBack);
  for (int i = 2; i < 20; ++i) {
    EXPECT_EQ(TargetStateOf(id_, AgentId(i)), TargetState::kPending) << AgentId(i);
    EXPECT_THAT(RenewalsOf(AgentId(i)), IsEmpty()) << AgentId(i);
    EXPECT_THAT(h_.agents().Received(AgentId(i)), IsEmpty()) << AgentId(i);
  }
  // The rolled-back host is back on its old certificate.
  EXPECT_EQ(h_.agents().BoundChannelSerial(AgentId(1)), h_.host(AgentId(1)).bound->channel_serial);

  std::vector<notify::Event> halted = h_.notifier().EventsOfType(notify::kCampaignHalted);
  ASSERT_THAT(halted, SizeIs(1));
  EXPECT_EQ(halted[0].subject, id_);
  EXPECT_THAT(halted[0].fields.at("reason"), HasSubstr(Fqdn(1)));
  EXPECT_THAT(AuditOf("campaign.halt", id_), SizeIs(1));

  // Ticks change nothing while halted.
  h_.clock().Advance(absl::Hours(1));
  TickAndSettle();
  EXPECT_THAT(RenewalsOf(AgentId(2)), IsEmpty());
  EXPECT_EQ(Campaign(id_).state, CampaignState::kHalted);
}

TEST_F(CampaignHaltTest, ResumeAcceptsTheFailuresSoFarAndANewFailureHaltsAgain) {
  ASSERT_TRUE(WaitForCampaign(id_, CampaignState::kHalted)) << Describe(id_);
  absl::StatusOr<CampaignView> resumed = campaigns().Resume(id_, "operator/admin/alice");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->campaign.failures_acknowledged, 1);
  EXPECT_EQ(resumed->failures, 1);

  // Waves 2 and 3 pass; host 12 in wave 4 spends the budget again.
  ASSERT_TRUE(h_.WaitUntil([&] {
    return Campaign(id_).state == CampaignState::kHalted &&
           TargetStateOf(id_, AgentId(12)) == TargetState::kRolledBack;
  })) << Describe(id_);
  ASSERT_TRUE(WaitForCampaign(id_, CampaignState::kHalted)) << Describe(id_);
  const store::CampaignRecord c = Campaign(id_);
  EXPECT_EQ(c.current_wave, 3);
  EXPECT_THAT(c.reason, AllOf(HasSubstr("wave 4"), HasSubstr(Fqdn(12)), HasSubstr("1 accepted")));
  for (int i = 2; i < 10; ++i) {
    EXPECT_EQ(TargetStateOf(id_, AgentId(i)), TargetState::kSucceeded) << AgentId(i);
  }
  EXPECT_THAT(h_.notifier().EventsOfType(notify::kCampaignHalted), SizeIs(2));

  // Resuming again accepts host 12 too, and the campaign completes.
  ASSERT_TRUE(campaigns().Resume(id_, "operator/admin/alice").ok());
  ASSERT_TRUE(WaitForCampaign(id_, CampaignState::kCompleted)) << Describe(id_);
  EXPECT_EQ(Campaign(id_).reason, "18 of 20 host(s) renewed");
  for (int i = 0; i < 20; ++i) {
    if (i == 1 || i == 12) continue;
    ExpectRenewedOnce(id_, AgentId(i));
  }
  EXPECT_THAT(RenewalsOf(AgentId(1)), SizeIs(1));  // a failed host is not retried
  EXPECT_THAT(h_.notifier().EventsOfType(notify::kCampaignFinished), SizeIs(1));
}

TEST_F(CampaignServiceTest, PercentBudgetAllowsTenPercentOfTwentyHostsToFail) {
  // Hosts 3 and 5 (wave 3) and 15 (wave 4) fail.
  AddHosts(20, [](int i, HostSpec& spec) { spec.failing = i == 3 || i == 5 || i == 15; });
  store::CampaignSpec spec;
  spec.waves = "1,10%,50%,100%";
  spec.max_in_flight = 3;
  spec.max_failures = "10%";
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kHalted)) << Describe(id);
  const store::CampaignRecord c = Campaign(id);
  EXPECT_EQ(c.current_wave, 3) << "two failures in wave 3 are within the budget";
  EXPECT_THAT(c.reason,
              AllOf(HasSubstr("3 host(s) failed"), HasSubstr("2 allowed"), HasSubstr(Fqdn(15))));
  auto view = campaigns().Get(id);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->allowed_failures, 2);
  EXPECT_EQ(view->failures, 3);
  std::vector<store::AuditRecord> promoted = AuditOf("campaign.wave.promoted", id);
  ASSERT_THAT(promoted, SizeIs(3));
  EXPECT_THAT(promoted[2].details,
              AllOf(HasSubstr("\"rolled_back\":\"2\""), HasSubstr("\"verified_20053\":\"6\""),
                    HasSubstr("\"failures_allowed\":\"2\"")));
}

// --- Soak and the health gate ---

TEST_F(CampaignServiceTest, NextWaveWaitsUntilTheClockPassesTheSoak) {
  AddHosts(3);
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.soak = absl::Minutes(30);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForTarget(id, AgentId(0), TargetState::kSucceeded)) << Describe(id);
  ASSERT_TRUE(h_.WaitUntil([&] { return Campaign(id).soak_until.has_value(); })) << Describe(id);
  EXPECT_EQ(*Campaign(id).soak_until, h_.clock().Now() + absl::Minutes(30));

  h_.clock().Advance(absl::Minutes(30) - absl::Seconds(1));
  TickAndSettle();
  EXPECT_EQ(Campaign(id).current_wave, 0);
  EXPECT_THAT(RenewalsOf(AgentId(1)), IsEmpty());
  EXPECT_THAT(RenewalsOf(AgentId(2)), IsEmpty());

  h_.clock().Advance(absl::Seconds(1));
  campaigns().Tick();
  // Wave 2 runs, then soaks too before the campaign completes.
  ASSERT_TRUE(h_.WaitUntil([&] {
    auto c = Campaign(id);
    return c.current_wave == 1 && c.soak_until.has_value();
  })) << Describe(id);
  EXPECT_EQ(Campaign(id).state, CampaignState::kRunning);
  h_.clock().Advance(absl::Minutes(30));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  std::vector<store::AuditRecord> promoted = AuditOf("campaign.wave.promoted", id);
  ASSERT_THAT(promoted, SizeIs(2));
  EXPECT_THAT(promoted[0].details, HasSubstr("\"soak\":\"30m\""));
}

TEST_F(CampaignServiceTest, GateAfterTheSoakFailsAHostThatIsNoLongerBoundToItsNewCertificate) {
  AddHosts(3);
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.soak = absl::Minutes(30);
  spec.max_failures = "0";
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] { return Campaign(id).soak_until.has_value(); })) << Describe(id);

  // During the soak the canary reports an inventory bound to its old certificate again.
  h_.clock().Advance(absl::Minutes(10));
  const testing::SimHost& canary = h_.host(AgentId(0));
  ASSERT_TRUE(h_.ReportInventory(AgentId(0), {*canary.bound}, canary.bound->channel_serial).ok());

  h_.clock().Advance(absl::Minutes(20));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kHalted)) << Describe(id);
  const auto targets = Targets(id);
  EXPECT_EQ(targets[0].state, TargetState::kFailed);
  EXPECT_THAT(targets[0].reason,
              AllOf(HasSubstr("health gate"), HasSubstr(canary.bound->channel_serial)));
  EXPECT_THAT(Campaign(id).reason, HasSubstr(Fqdn(0)));
  EXPECT_THAT(AuditOf("campaign.wave.gate_failed", id), SizeIs(1));
  EXPECT_THAT(AuditOf("campaign.wave.promoted", id), IsEmpty());
  EXPECT_THAT(RenewalsOf(AgentId(1)), IsEmpty());
}

TEST_F(CampaignServiceTest, GateAfterTheSoakPassesAHostThatReportsItsNewBinding) {
  AddHosts(2);
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.soak = absl::Minutes(30);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] { return Campaign(id).soak_until.has_value(); })) << Describe(id);
  h_.clock().Advance(absl::Minutes(10));
  ASSERT_TRUE(h_.ReportInventory(AgentId(0), {}, h_.agents().BoundChannelSerial(AgentId(0))).ok());
  h_.clock().Advance(absl::Minutes(20));
  campaigns().Tick();
  ASSERT_TRUE(h_.WaitUntil([&] { return Campaign(id).current_wave == 1; })) << Describe(id);
  EXPECT_EQ(TargetStateOf(id, AgentId(0)), TargetState::kSucceeded);
}

// --- Offline hosts ---

TEST_F(CampaignServiceTest, OfflineHostIsRenewedWhenItConnectsBeforeTheDeadline) {
  AddHosts(3, [](int i, HostSpec& spec) { spec.online = i != 2; });
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.offline_deadline = absl::Hours(1);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForTarget(id, AgentId(1), TargetState::kSucceeded)) << Describe(id);
  h_.clock().Advance(absl::Minutes(59));
  TickAndSettle();
  EXPECT_EQ(TargetStateOf(id, AgentId(2)), TargetState::kPending);
  EXPECT_EQ(Campaign(id).state, CampaignState::kRunning);

  ASSERT_TRUE(h_.Connect(AgentId(2)).ok());
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  ExpectRenewedOnce(id, AgentId(2));
}

TEST_F(CampaignServiceTest, OfflineHostIsNotReachedAfterTheDeadlineAndTheCampaignCompletes) {
  AddHosts(3, [](int i, HostSpec& spec) { spec.online = i != 2; });
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.offline_deadline = absl::Hours(1);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForTarget(id, AgentId(1), TargetState::kSucceeded)) << Describe(id);
  TickAndSettle();
  EXPECT_EQ(TargetStateOf(id, AgentId(2)), TargetState::kPending);

  h_.clock().Advance(absl::Hours(1));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  const auto targets = Targets(id);
  EXPECT_EQ(targets[2].state, TargetState::kNotReached);
  EXPECT_THAT(targets[2].reason, HasSubstr("offline"));
  EXPECT_EQ(Campaign(id).reason, absl::StrCat("2 of 3 host(s) renewed; not reached: ", Fqdn(2)));
  EXPECT_THAT(RenewalsOf(AgentId(2)), IsEmpty());
  std::vector<notify::Event> finished = h_.notifier().EventsOfType(notify::kCampaignFinished);
  ASSERT_THAT(finished, SizeIs(1));
  EXPECT_THAT(finished[0].summary, HasSubstr(Fqdn(2)));
  std::vector<store::AuditRecord> promoted = AuditOf("campaign.wave.promoted", id);
  ASSERT_THAT(promoted, SizeIs(2));
  EXPECT_THAT(promoted[1].details, HasSubstr("\"not_reached\":\"1\""));
}

TEST_F(CampaignServiceTest, HostKeptBusyByAnotherRenewalIsNotReachedAfterTheDeadline) {
  AddHosts(2);
  // An operator's renewal of host 1 is under way and its agent does not answer it.
  h_.agents().Hold(
      [](const std::string& agent, const model::Command&) { return agent == AgentId(1); });
  renewal::StartRequest manual;
  manual.agent = AgentId(1);
  manual.created_by = "operator/admin/bob";
  auto job = h_.renewals().Start(manual);
  ASSERT_TRUE(job.ok()) << job.status();

  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.offline_deadline = absl::Hours(1);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForTarget(id, AgentId(0), TargetState::kSucceeded)) << Describe(id);
  TickAndSettle();
  EXPECT_EQ(TargetStateOf(id, AgentId(1)), TargetState::kPending);
  EXPECT_THAT(Targets(id)[1].reason, HasSubstr(job->id));

  h_.clock().Advance(absl::Hours(1));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  const auto targets = Targets(id);
  EXPECT_EQ(targets[1].state, TargetState::kNotReached);
  EXPECT_THAT(targets[1].reason,
              AllOf(HasSubstr("kept busy until the deadline"), HasSubstr(job->id)));
  EXPECT_THAT(RenewalsOf(AgentId(1)), SizeIs(1));  // only the operator's
}

// The offline deadline is for hosts the campaign cannot reach: a connected host waiting for a
// hard window that opens later than offline_deadline is renewed when it opens.
TEST_F(CampaignServiceTest, HardWindowOpeningAfterTheOfflineDeadlineStillRenewsHosts) {
  AddHosts(2);
  const absl::Weekday in_three_days =
      absl::GetWeekday(absl::ToCivilDay(h_.clock().Now() + 3 * kDay, absl::UTCTimeZone()));
  const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.window = absl::StrCat(kDays[static_cast<int>(in_three_days)], " 02:00-04:00 UTC");
  const std::string id = MustCreateAndStart(spec);
  for (int hours = 0; hours < 3 * 24 + 2; ++hours) {
    h_.clock().Advance(absl::Hours(1));
    TickAndSettle();
  }
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 2; ++i) ExpectRenewedOnce(id, AgentId(i));
}

// A pause longer than offline_deadline does not make the connected hosts not_reached.
TEST_F(CampaignServiceTest, ResumeAfterALongPauseStillRenewsTheConnectedHosts) {
  AddHosts(4);
  h_.agents().Hold([](const std::string&, const model::Command& c) { return IsRebind(c); });
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.max_in_flight = 1;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] { return h_.agents().ParkedCount() == 1; })) << Describe(id);
  ASSERT_TRUE(campaigns().Pause(id, "alice").ok());
  h_.agents().Release();
  ASSERT_TRUE(WaitForTarget(id, AgentId(0), TargetState::kSucceeded)) << Describe(id);
  h_.clock().Advance(2 * kDay);  // a weekend
  ASSERT_TRUE(campaigns().Resume(id, "alice").ok());
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 4; ++i) ExpectRenewedOnce(id, AgentId(i));
}

// --- Pause, cancel, revert ---

class CampaignControlTest : public CampaignServiceTest {
 protected:
  // Six hosts in one wave, two at a time; the rebinds of the first two are held.
  void SetUp() override {
    CampaignServiceTest::SetUp();
    AddHosts(6);
    h_.agents().Hold([](const std::string&, const model::Command& c) { return IsRebind(c); });
    store::CampaignSpec spec;
    spec.waves = "100%";
    spec.max_in_flight = 2;
    id_ = MustCreateAndStart(spec);
    ASSERT_TRUE(h_.WaitUntil([&] { return h_.agents().ParkedCount() == 2; })) << Describe(id_);
  }

  std::string id_;
};

TEST_F(CampaignControlTest, PauseStartsNoNewHostWhileHostsInFlightFinish) {
  absl::StatusOr<CampaignView> paused = campaigns().Pause(id_, "operator/admin/alice");
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->campaign.state, CampaignState::kPaused);
  EXPECT_EQ(paused->campaign.reason, "paused by operator/admin/alice");
  EXPECT_EQ(campaigns().Pause(id_, "alice").status().code(), absl::StatusCode::kFailedPrecondition);

  h_.agents().Release();
  ASSERT_TRUE(WaitForTarget(id_, AgentId(0), TargetState::kSucceeded)) << Describe(id_);
  ASSERT_TRUE(WaitForTarget(id_, AgentId(1), TargetState::kSucceeded)) << Describe(id_);
  TickAndSettle();
  for (int i = 2; i < 6; ++i) {
    EXPECT_EQ(TargetStateOf(id_, AgentId(i)), TargetState::kPending) << AgentId(i);
    EXPECT_THAT(RenewalsOf(AgentId(i)), IsEmpty()) << AgentId(i);
  }

  ASSERT_TRUE(campaigns().Resume(id_, "operator/admin/alice").ok());
  ASSERT_TRUE(WaitForCampaign(id_, CampaignState::kCompleted)) << Describe(id_);
  for (int i = 0; i < 6; ++i) ExpectRenewedOnce(id_, AgentId(i));
  EXPECT_THAT(AuditOf("campaign.pause", id_), SizeIs(1));
  EXPECT_THAT(AuditOf("campaign.resume", id_), SizeIs(1));
}

TEST_F(CampaignControlTest, CancelCancelsPendingHostsAndLetsHostsInFlightFinish) {
  absl::StatusOr<CampaignView> cancelled =
      campaigns().Cancel(id_, "operator/admin/alice", "change freeze");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->campaign.state, CampaignState::kCancelled);
  EXPECT_EQ(cancelled->campaign.reason, "change freeze");
  EXPECT_TRUE(cancelled->campaign.finished_at.has_value());
  for (int i = 2; i < 6; ++i) {
    EXPECT_EQ(cancelled->targets[i].state, TargetState::kCancelled) << AgentId(i);
  }
  EXPECT_EQ(cancelled->targets[0].state, TargetState::kRunning);

  h_.agents().Release();
  ASSERT_TRUE(WaitForTarget(id_, AgentId(0), TargetState::kSucceeded)) << Describe(id_);
  ASSERT_TRUE(WaitForTarget(id_, AgentId(1), TargetState::kSucceeded)) << Describe(id_);
  TickAndSettle();
  EXPECT_EQ(Campaign(id_).state, CampaignState::kCancelled);
  for (int i = 2; i < 6; ++i) EXPECT_THAT(RenewalsOf(AgentId(i)), IsEmpty()) << AgentId(i);
  EXPECT_EQ(campaigns().Cancel(id_, "alice", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(campaigns().Resume(id_, "alice").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto agents = campaigns().AgentsInCampaigns();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_THAT(*agents, IsEmpty());
}

TEST_F(CampaignServiceTest, RevertRebindsTheRenewedHostsOfTheHaltedWaveToTheirPreviousCertificate) {
  AddHosts(4, [](int i, HostSpec& spec) { spec.failing = i == 3; });
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.max_in_flight = 3;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kHalted)) << Describe(id);
  ASSERT_EQ(TargetStateOf(id, AgentId(1)), TargetState::kSucceeded) << Describe(id);
  ASSERT_EQ(TargetStateOf(id, AgentId(2)), TargetState::kSucceeded) << Describe(id);

  h_.agents().Hold(
      [](const std::string&, const model::Command& c) { return absl::EndsWith(c.id, ".revert"); });
  absl::StatusOr<CampaignView> reverting = campaigns().Revert(id, "operator/admin/alice");
  ASSERT_TRUE(reverting.ok()) << reverting.status();
  EXPECT_THAT(reverting->campaign.reason, HasSubstr("reverting 2 host(s) of wave 2"));
  EXPECT_EQ(reverting->targets[1].state, TargetState::kReverting);
  EXPECT_EQ(reverting->targets[2].state, TargetState::kReverting);
  EXPECT_EQ(reverting->targets[0].state, TargetState::kSucceeded);  // wave 1 stays
  EXPECT_EQ(reverting->targets[3].state, TargetState::kRolledBack);
  for (int i : {1, 2}) {
    const std::string command_id =
        absl::StrCat(CampaignService::RenewalIdFor(id, AgentId(i)), ".revert");
    EXPECT_EQ(reverting->targets[i].revert_command_id, command_id);
    auto command = h_.store().GetCommand(command_id);
    ASSERT_TRUE(command.ok()) << command.status();
    const auto* rebind = std::get_if<model::RebindPayload>(&command->command.payload);
    ASSERT_NE(rebind, nullptr);
    EXPECT_EQ(rebind->thumbprint, h_.host(AgentId(i)).bound->thumbprint);
  }
  ASSERT_TRUE(h_.WaitUntil([&] { return h_.agents().ParkedCount() == 2; }));
  TickAndSettle();
  EXPECT_EQ(TargetStateOf(id, AgentId(1)), TargetState::kReverting);

  h_.agents().Release();
  // The command's end reaches the campaign on its next pass.
  ASSERT_TRUE(h_.WaitUntil([&] {
    campaigns().Tick();
    return TargetStateOf(id, AgentId(1)) == TargetState::kReverted &&
           TargetStateOf(id, AgentId(2)) == TargetState::kReverted;
  })) << Describe(id);
  ASSERT_TRUE(h_.Settle());  // the pass audits each host after storing it
  for (int i : {1, 2}) {
    EXPECT_EQ(h_.agents().BoundChannelSerial(AgentId(i)), h_.host(AgentId(i)).bound->channel_serial)
        << AgentId(i);
  }
  EXPECT_NE(h_.agents().BoundChannelSerial(AgentId(0)), h_.host(AgentId(0)).bound->channel_serial);
  EXPECT_THAT(AuditOf("campaign.host.revert", id), SizeIs(2));
  EXPECT_EQ(Campaign(id).state, CampaignState::kHalted);
  // Nothing of the wave is left to revert.
  EXPECT_EQ(campaigns().Revert(id, "alice").status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- Maintenance windows ---

TEST_F(CampaignServiceTest, HardWindowThatIsClosedStartsNothingUntilTheClockEntersIt) {
  AddHosts(2);
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.window = "* 02:00-04:00 UTC";  // the clock starts at midnight UTC
  const std::string id = MustCreate(spec);
  auto plan = campaigns().Plan(id);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const TargetPlan& p : *plan) {
    EXPECT_THAT(p.warnings, Contains(HasSubstr("outside the hard maintenance window")))
        << p.target.agent_id;
  }

  ASSERT_TRUE(campaigns().Start(id, "alice").ok());
  ASSERT_TRUE(h_.Settle());
  TickAndSettle();
  EXPECT_THAT(RenewalsOf(AgentId(0)), IsEmpty());
  EXPECT_THAT(Targets(id)[0].reason, HasSubstr("outside the hard maintenance window"));
  h_.clock().Advance(absl::Hours(2) - absl::Seconds(1));
  TickAndSettle();
  EXPECT_THAT(RenewalsOf(AgentId(0)), IsEmpty());

  h_.clock().Advance(absl::Seconds(1));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  EXPECT_THAT(AuditOf("campaign.emergency_override", id), IsEmpty());
}

TEST_F(CampaignServiceTest, EmergencyCampaignStartsOutsideAClosedHardWindowAndIsAudited) {
  AddHosts(2);
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.window = "* 02:00-04:00 UTC";
  spec.emergency = true;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  EXPECT_THAT(AuditOf("campaign.emergency_override", id), SizeIs(1));
}

TEST_F(CampaignServiceTest, SoftWindowGivesWayOnlyToACertificateThatExpiresBeforeItOpens) {
  auto window = policy::ParseMaintenanceWindow("* 02:00-04:00 UTC");
  ASSERT_TRUE(window.ok()) << window.status();
  h_.config().windows.push_back({.name = "nights", .window = *window, .hard = false});
  ASSERT_TRUE(h_.Restart().ok());  // the window configuration is read at start
  AddHosts(2, [](int i, HostSpec& spec) {
    if (i == 0) spec.expires_in = absl::Hours(20);  // expires before 02:00 tomorrow + a day
  });
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.window = "nights";
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(WaitForTarget(id, AgentId(0), TargetState::kSucceeded)) << Describe(id);
  TickAndSettle();
  EXPECT_EQ(TargetStateOf(id, AgentId(1)), TargetState::kPending);
  EXPECT_THAT(Targets(id)[1].reason, HasSubstr("outside the soft maintenance window"));

  h_.clock().Advance(absl::Hours(2));
  campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
}

// --- Restarts ---

TEST_F(CampaignServiceTest, RestartAfterTheCanaryWaveRenewsEveryHostExactlyOnce) {
  AddHosts(6);
  // Only the canary's commands are answered before the restart.
  h_.agents().Hold(
      [](const std::string& agent, const model::Command&) { return agent != AgentId(0); });
  store::CampaignSpec spec;
  spec.waves = "1,50%,100%";
  spec.max_in_flight = 2;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] {
    return Campaign(id).current_wave == 1 && h_.agents().ParkedCount() == 2;
  })) << Describe(id);
  ASSERT_EQ(TargetStateOf(id, AgentId(0)), TargetState::kSucceeded);

  ASSERT_TRUE(h_.Restart().ok());
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 6; ++i) ExpectRenewedOnce(id, AgentId(i));
  EXPECT_THAT(AuditOf("campaign.wave.promoted", id), SizeIs(3));
}

TEST_F(CampaignServiceTest, RestartWithJobsOfWaveTwoInFlightRenewsEveryHostExactlyOnce) {
  AddHosts(6);
  // Wave 2's certificates are issued and installed; their rebinds are lost with the restart.
  h_.agents().Hold([](const std::string& agent, const model::Command& c) {
    return IsRebind(c) && (agent == AgentId(1) || agent == AgentId(2));
  });
  store::CampaignSpec spec;
  spec.waves = "1,50%,100%";
  spec.max_in_flight = 2;
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] { return h_.agents().ParkedCount() == 2; })) << Describe(id);
  for (int i : {1, 2}) {
    auto job = h_.store().GetRenewal(CampaignService::RenewalIdFor(id, AgentId(i)));
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->state, RenewalState::kBindSent);
  }

  ASSERT_TRUE(h_.Restart().ok());
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 6; ++i) ExpectRenewedOnce(id, AgentId(i));
}

TEST_F(CampaignServiceTest, RestartDuringTheSoakRenewsEveryHostExactlyOnce) {
  AddHosts(4);
  store::CampaignSpec spec;
  spec.waves = "1,100%";
  spec.soak = absl::Minutes(30);
  const std::string id = MustCreateAndStart(spec);
  ASSERT_TRUE(h_.WaitUntil([&] { return Campaign(id).soak_until.has_value(); })) << Describe(id);

  ASSERT_TRUE(h_.Restart().ok());
  ASSERT_TRUE(h_.Settle());
  EXPECT_THAT(RenewalsOf(AgentId(1)), IsEmpty()) << "the soak survives the restart";
  h_.clock().Advance(absl::Minutes(30));
  h_.campaigns().Tick();
  ASSERT_TRUE(h_.WaitUntil([&] {
    auto c = Campaign(id);
    return c.current_wave == 1 && c.soak_until.has_value();
  })) << Describe(id);
  ASSERT_TRUE(h_.Restart().ok());
  h_.clock().Advance(absl::Minutes(30));
  h_.campaigns().Tick();
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 4; ++i) ExpectRenewedOnce(id, AgentId(i));
}

TEST_F(CampaignServiceTest, HostRecordedRunningWithoutItsJobGetsTheJobOnceUnderTheDerivedId) {
  AddHosts(3);
  store::CampaignSpec spec;
  spec.waves = "100%";
  spec.max_in_flight = 1;
  const std::string id = MustCreate(spec);
  // What a controller killed between the two writes leaves: the campaign running, its first
  // host recorded as running, and no renewal job.
  store::CampaignRecord c = Campaign(id);
  c.state = CampaignState::kRunning;
  c.started_at = h_.clock().Now();
  c.wave_started_at = h_.clock().Now();
  ASSERT_TRUE(h_.store().UpdateCampaign(c, CampaignState::kPlanned).ok());
  store::CampaignTargetRecord t = Targets(id)[0];
  t.state = TargetState::kRunning;
  t.renewal_id = CampaignService::RenewalIdFor(id, t.agent_id);
  t.started_at = h_.clock().Now();
  ASSERT_TRUE(h_.store().UpdateCampaignTarget(t, TargetState::kPending).ok());

  ASSERT_TRUE(h_.Restart().ok());
  campaigns().Tick();  // a second pass at once must not start a second job
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  for (int i = 0; i < 3; ++i) ExpectRenewedOnce(id, AgentId(i));
}

// --- Plan ---

TEST_F(CampaignServiceTest, PlanWarnsAboutOfflineHostsActiveRenewalsAndMissingCertificates) {
  AddHosts(3, [](int i, HostSpec& spec) { spec.online = i != 1; });
  ASSERT_TRUE(h_.AddHost(Unbound("bare", "bare.corp.example.com")).ok());
  // An operator's renewal of host 2 is under way (the host has not answered yet).
  h_.agents().Hold(
      [](const std::string& agent, const model::Command&) { return agent == AgentId(2); });
  renewal::StartRequest manual;
  manual.agent = AgentId(2);
  manual.created_by = "operator/admin/bob";
  auto job = h_.renewals().Start(manual);
  ASSERT_TRUE(job.ok()) << job.status();

  const std::string id = MustCreate({});
  auto plan = campaigns().Plan(id);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::map<std::string, TargetPlan> by_agent;
  for (const TargetPlan& p : *plan) by_agent[p.target.agent_id] = p;
  ASSERT_THAT(by_agent, SizeIs(4));

  EXPECT_THAT(by_agent[AgentId(0)].warnings, IsEmpty());
  EXPECT_TRUE(by_agent[AgentId(0)].connected);
  EXPECT_EQ(by_agent[AgentId(0)].bound_thumbprint, h_.host(AgentId(0)).bound->thumbprint);
  EXPECT_EQ(by_agent[AgentId(0)].bound_not_after, h_.host(AgentId(0)).bound->not_after);
  EXPECT_EQ(by_agent[AgentId(0)].change,
            "renew via builtin (profile scom), then rebind and verify 20053");

  EXPECT_FALSE(by_agent[AgentId(1)].connected);
  EXPECT_THAT(by_agent[AgentId(1)].warnings, ElementsAre("offline now"));
  EXPECT_THAT(by_agent[AgentId(2)].warnings,
              ElementsAre(absl::StrCat("renewal ", job->id, " active: waits for it")));
  EXPECT_THAT(by_agent["bare"].warnings,
              ElementsAre("no bound certificate: the new one will be bound"));
}

TEST_F(CampaignServiceTest, AgentsInCampaignsAreThePendingAndRunningHostsOfUnfinishedCampaigns) {
  AddHosts(4);
  store::CampaignSpec web;
  web.labels = {{"role", "web"}};
  MustCreate(web);
  auto agents = campaigns().AgentsInCampaigns();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_THAT(*agents, ElementsAre(AgentId(0), AgentId(2)));

  store::CampaignSpec db;
  db.labels = {{"role", "db"}};
  db.waves = "100%";
  const std::string id = MustCreateAndStart(db);
  ASSERT_TRUE(WaitForCampaign(id, CampaignState::kCompleted)) << Describe(id);
  agents = campaigns().AgentsInCampaigns();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_THAT(*agents, ElementsAre(AgentId(0), AgentId(2)));
}

}  // namespace
}  // namespace certfleet::controller::campaigns
