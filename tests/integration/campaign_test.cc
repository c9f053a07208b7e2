// Campaigns end to end with the real binaries: lab hosts renewed in waves through the builtin
// CA, a host made to fail (its HealthService refuses one restart, so the rebind rolls back), the
// halt and the resume, a controller killed in the middle, webhooks delivered to a receiver on
// loopback that fails before it recovers, and the metrics endpoint scraped and parsed.

#include <httplib.h>
#include <signal.h>

#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/fleet_fixture.h"
#include "tests/integration/process.h"

namespace certfleet::testing {
namespace {

using google::protobuf::Struct;

Struct Object(const std::string& json) {
  Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

double Num(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? 0 : it->second.number_value();
}

// A webhook receiver on 127.0.0.1: answers 500 to the first `failures` requests, then 200, and
// keeps the bodies it accepted.
class Receiver {
 public:
  explicit Receiver(int failures) : failures_(failures) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      ++requests_;
      if (failures_ > 0) {
        --failures_;
        res.status = 500;
        return;
      }
      accepted_.push_back(req.body);
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> Accepted() {
    absl::MutexLock lock(&mu_);
    return accepted_;
  }
  int Requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // The accepted events of type `type`.
  std::vector<Struct> Events(const std::string& type) {
    std::vector<Struct> out;
    for (const auto& body : Accepted()) {
      Struct s = Object(body);
      if (Str(s, "type") == type) out.push_back(s);
    }
    return out;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> accepted_ ABSL_GUARDED_BY(mu_);
};

class CampaignTest : public FleetTest {
 protected:
  void SetUp() override {
    // The controller of these tests reads a config with a webhook and a metrics endpoint, so
    // the fixture's controller (started without it) is replaced.
    FleetTest::SetUp();
    receiver_ = std::make_unique<Receiver>(2);
    WriteText(dir_ + "/controller.yaml",
              absl::StrCat("notifications:\n"
                           "  webhooks:\n"
                           "    - name: ops\n"
                           "      url: http://127.0.0.1:",
                           receiver_->port(),
                           "/hook\n"
                           "      events: [campaign.halted, campaign.finished, renewal.failed]\n"
                           "      max_attempts: 10\n"
                           "metrics:\n"
                           "  listen: 127.0.0.1:0\n"));
    extra_controller_args_ = {"--config", dir_ + "/controller.yaml"};
    RestartController();
  }

  void RestartController() {
    controller_.reset();
    StartController(address_);
  }

  // Host i (0-based) of `n`: its bound certificate expires in 10 + i days, so campaigns order
  // the hosts by index.
  void AddHosts(int n) {
    for (int i = 0; i < n; ++i) {
      auto host = std::make_unique<LabHost>(absl::StrCat(dir_, "/host", i),
                                            absl::StrCat("scom-ms", i, ".corp.example"));
      host->Trust(*pki_);
      auto spec = pki_->ScomLeafSpec(host->fqdn());
      spec.not_after = absl::Now() + absl::Hours(24 * (10 + i));
      TestCert cert = pki_->Issue(spec);
      host->AddToMy(cert, "current");
      host->Bind(cert);
      StartAgent(*host, CreateToken({"--label", "role=ms"}));
      hosts_.push_back(std::move(host));
    }
    ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == n; }, absl::Seconds(60)))
        << controller_->Log();
    // Every host's inventory (with its bound certificate) is in before a selector runs.
    ASSERT_TRUE(WaitFor(
        [&] {
          ListValue rows = ParseArray(Ctl({"certs", "list", "--output", "json"}).out);
          return rows.values_size() >= n;
        },
        absl::Seconds(30)));
  }

  // The host's HealthService refuses its next restart: the rebind rolls back.
  void FailNextRestart(const LabHost& host) {
    WriteText(host.root() + "/Faults/HealthService.json", R"({"restart": "fail", "times": 1})");
  }

  Struct Show(const std::string& id) {
    RunResult r = Ctl({"campaign", "show", id, "--output", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Object(r.out);
  }
  bool WaitCampaign(const std::string& id, const std::string& state,
                    absl::Duration timeout = absl::Seconds(90)) {
    return WaitFor([&] { return Str(Show(id), "state") == state; }, timeout);
  }
  std::map<std::string, std::string> TargetStates(const Struct& campaign) {
    std::map<std::string, std::string> out;
    for (const auto& v : campaign.fields().at("targets").list_value().values()) {
      out[Str(v.struct_value(), "fqdn")] = Str(v.struct_value(), "state");
    }
    return out;
  }
  int RenewalsOf(const std::string& fqdn) {
    return ParseArray(Ctl({"renewals", "list", "--agent", fqdn, "--output", "json"}).out)
        .values_size();
  }
  std::string Metrics() {
    std::string addr(absl::StripAsciiWhitespace(ReadText(state_dir() + "/metrics.addr")));
    std::vector<std::string> hp = absl::StrSplit(addr, ':');
    httplib::Client client(hp[0], std::stoi(hp[1]));
    auto res = client.Get("/metrics");
    if (!res || res->status != 200) return "";
    return res->body;
  }

  std::unique_ptr<Receiver> receiver_;
  std::vector<std::unique_ptr<LabHost>> hosts_;
};

TEST_F(CampaignTest, ACampaignRollsOutInWavesHaltsOnAFailureAndFinishesAfterResume) {
  AddHosts(4);
  FailNextRestart(*hosts_[2]);
  RunResult created =
      Ctl({"campaign", "create", "--name", "ms-renewal", "--selector", "role=ms", "--waves",
           "1,50%,100%", "--max-in-flight", "1", "--max-failures", "0", "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  Struct campaign = Object(created.out);
  const std::string id = Str(campaign, "id");
  EXPECT_EQ(Str(campaign, "state"), "planned");
  EXPECT_EQ(Num(campaign, "hosts"), 4);
  EXPECT_EQ(Num(campaign, "wave_count"), 3);

  // The dry run lists every host in its wave and changes nothing.
  RunResult plan = Ctl({"campaign", "plan", id});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_TRUE(absl::StrContains(plan.out, "renew via builtin (profile scom)")) << plan.out;
  for (const auto& h : hosts_) EXPECT_TRUE(absl::StrContains(plan.out, h->fqdn())) << plan.out;
  EXPECT_EQ(RenewalsOf(hosts_[0]->fqdn()), 0);

  ASSERT_EQ(Ctl({"campaign", "start", id}).exit_code, 0);
  // watch follows it to the halt: host 2 (wave 3) rolls back and the budget is 0.
  RunResult watch = Ctl({"campaign", "watch", id, "--interval", "200ms"});
  EXPECT_EQ(watch.exit_code, 1) << watch.out << watch.err;
  EXPECT_TRUE(absl::StrContains(watch.err, "halted")) << watch.err;
  Struct halted = Show(id);
  ASSERT_EQ(Str(halted, "state"), "halted") << controller_->Log();
  EXPECT_TRUE(absl::StrContains(Str(halted, "reason"), hosts_[2]->fqdn())) << Str(halted, "reason");
  auto states = TargetStates(halted);
  EXPECT_EQ(states[hosts_[0]->fqdn()], "succeeded");
  EXPECT_EQ(states[hosts_[1]->fqdn()], "succeeded");
  EXPECT_EQ(states[hosts_[2]->fqdn()], "rolled_back");
  // max in flight 1: the last host of the wave never started once the budget was spent.
  EXPECT_EQ(states[hosts_[3]->fqdn()], "pending");
  EXPECT_EQ(RenewalsOf(hosts_[3]->fqdn()), 0);

  // The operator accepts the failure; the campaign finishes.
  RunResult resume = Ctl({"campaign", "resume", id});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  RunResult watch2 = Ctl({"campaign", "watch", id, "--interval", "200ms"});
  EXPECT_EQ(watch2.exit_code, 0) << watch2.out << watch2.err << controller_->Log();
  Struct done = Show(id);
  EXPECT_EQ(Str(done, "state"), "completed");
  EXPECT_EQ(TargetStates(done)[hosts_[3]->fqdn()], "succeeded");
  EXPECT_EQ(Num(done, "failures_accepted"), 1);
  // One renewal per host: nothing was renewed twice.
  for (const auto& h : hosts_) EXPECT_EQ(RenewalsOf(h->fqdn()), 1) << h->fqdn();

  // The webhook failed twice, then got the halt and the finish (and the rolled-back renewal).
  ASSERT_TRUE(WaitFor([&] { return receiver_->Events("campaign.finished").size() == 1; },
                      absl::Seconds(30)))
      << receiver_->Requests() << " requests; " << controller_->Log();
  auto halts = receiver_->Events("campaign.halted");
  ASSERT_EQ(halts.size(), 1u);
  EXPECT_EQ(Str(halts[0], "subject"), id);
  EXPECT_GE(receiver_->Requests(), 2 + 3);
  EXPECT_EQ(receiver_->Events("renewal.failed").size(), 1u);

  // The audit log holds the decisions, and the chain verifies.
  RunResult audit = Ctl({"audit", "list", "--output", "json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_TRUE(absl::StrContains(audit.out, "campaign.wave.promoted")) << audit.out;
  EXPECT_TRUE(absl::StrContains(audit.out, "campaign.halt")) << audit.out;
  EXPECT_TRUE(absl::StrContains(audit.out, "campaign.resume")) << audit.out;
  EXPECT_EQ(Ctl({"audit", "verify"}).exit_code, 0);

  // Metrics: the campaign's hosts per state, the agents, the renewals by result.
  std::string text = Metrics();
  ASSERT_FALSE(text.empty());
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+|^-?Inf|^NaN$)");
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    EXPECT_TRUE(std::regex_search(std::string(line), sample)) << line;
  }
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("certfleet_campaign_hosts{campaign=\"", id, "\",state=\"succeeded\"} 3")))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "certfleet_agents_connected 4")) << text;
  EXPECT_TRUE(
      absl::StrContains(text, "certfleet_renewals_total{issuer=\"builtin\",result=\"done\"} 3"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "certfleet_certificate_expiration_timestamp_seconds{"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "certfleet_issuer_latency_seconds_count{issuer=\"builtin\"}"))
      << text;
}

TEST_F(CampaignTest, AControllerKilledMidCampaignContinuesAndRenewsEveryHostOnce) {
  AddHosts(4);
  RunResult created = Ctl({"campaign", "create", "--name", "kill", "--waves", "1,100%",
                           "--max-in-flight", "1", "--start", "--output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string id = Str(Object(created.out), "id");
  // Kill -9 once the canary passed and the second wave is under way.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = TargetStates(Show(id));
        return s[hosts_[1]->fqdn()] == "running" || s[hosts_[1]->fqdn()] == "succeeded";
      },
      absl::Seconds(60)));
  controller_->Signal(SIGKILL);
  controller_->Wait(absl::Seconds(10));
  RestartController();
  ASSERT_TRUE(WaitCampaign(id, "completed")) << controller_->Log();
  for (const auto& h : hosts_) {
    EXPECT_EQ(TargetStates(Show(id))[h->fqdn()], "succeeded");
    EXPECT_EQ(RenewalsOf(h->fqdn()), 1) << h->fqdn();
  }
}

TEST_F(CampaignTest, BadCampaignsAreRefusedWithTheReason) {
  AddHosts(1);
  RunResult bad_waves = Ctl({"campaign", "create", "--name", "x", "--waves", "10%,5%"});
  EXPECT_EQ(bad_waves.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad_waves.err, "10%,5%")) << bad_waves.err;
  RunResult none = Ctl({"campaign", "create", "--name", "x", "--selector", "role=nothing"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(none.err, "no host matches")) << none.err;
  RunResult window = Ctl({"campaign", "create", "--name", "x", "--window", "Mon 25:00-26:00"});
  EXPECT_EQ(window.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(window.err, "25:00")) << window.err;
  RunResult unknown = Ctl({"campaign", "show", "cmp-nothing"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "not found")) << unknown.err;
  // A hard window closed all week: created and started, nothing starts; plan says why.
  RunResult closed = Ctl({"campaign", "create", "--name", "w", "--window", "* 00:00-00:01 UTC",
                          "--start", "--output", "json"});
  ASSERT_EQ(closed.exit_code, 0) << closed.err;
  const std::string id = Str(Object(closed.out), "id");
  RunResult plan = Ctl({"campaign", "plan", id});
  if (absl::Now() - absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 86400 * 86400) >
      absl::Minutes(2)) {
    EXPECT_TRUE(absl::StrContains(plan.out, "outside the hard maintenance window")) << plan.out;
    absl::SleepFor(absl::Seconds(2));
    EXPECT_EQ(RenewalsOf(hosts_[0]->fqdn()), 0);
  }
  // An emergency campaign ignores hard windows, and needs an admin: an operator is refused.
  std::string operator_dir = dir_ + "/operator";
  RunResult issued =
      RunCommand({CERTFLEET_CONTROLLER_BIN, "issue-operator", "--state-dir", state_dir(), "--name",
                  "bob", "--role", "operator", "--out", operator_dir});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  RunResult refused =
      Ctl({"campaign", "create", "--name", "e", "--window", "* 00:00-00:01 UTC", "--emergency"},
          operator_dir);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(refused.err, "role operator")) << refused.err;
  ASSERT_EQ(Ctl({"campaign", "cancel", id}).exit_code, 0);
  RunResult emergency = Ctl({"campaign", "create", "--name", "e", "--window", "* 00:00-00:01 UTC",
                             "--emergency", "--start", "--output", "json"});
  ASSERT_EQ(emergency.exit_code, 0) << emergency.err;
  const std::string eid = Str(Object(emergency.out), "id");
  EXPECT_TRUE(WaitCampaign(eid, "completed")) << controller_->Log();
  EXPECT_TRUE(absl::StrContains(Ctl({"audit", "list"}).out, "campaign.emergency_override"));
}

// The policy scheduler through the real binaries: a host whose certificate expires in 10 days
// falls under a policy that renews 30 days before expiry; the controller renews it without an
// operator, audits the decision, and the webhook hears about the expiry first.
class SchedulerTest : public CampaignTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    receiver_ = std::make_unique<Receiver>(0);
    WriteText(dir_ + "/controller.yaml", absl::StrCat("policy_interval: 1s\n"
                                                      "policies:\n"
                                                      "  - name: ms\n"
                                                      "    selector: {role: ms}\n"
                                                      "    renew_before: 30d\n"
                                                      "    jitter: 1h\n"
                                                      "notifications:\n"
                                                      "  webhooks:\n"
                                                      "    - name: ops\n"
                                                      "      url: http://127.0.0.1:",
                                                      receiver_->port(), "/hook\n"));
    extra_controller_args_ = {"--config", dir_ + "/controller.yaml"};
    RestartController();
  }
};

TEST_F(SchedulerTest, APolicyRenewsAnExpiringHostWithoutAnOperator) {
  AddHosts(1);
  ASSERT_TRUE(WaitFor([&] { return RenewalsOf(hosts_[0]->fqdn()) == 1; }, absl::Seconds(30)))
      << controller_->Log();
  ListValue renewals =
      ParseArray(Ctl({"renewals", "list", "--agent", hosts_[0]->fqdn(), "--output", "json"}).out);
  const std::string id = Str(renewals.values(0).struct_value(), "id");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Str(Object(Ctl({"renewals", "show", id, "--output", "json"}).out), "state") ==
               "done";
      },
      absl::Seconds(60)))
      << controller_->Log();
  EXPECT_EQ(Str(Object(Ctl({"renewals", "show", id, "--output", "json"}).out), "created_by"),
            "policy/ms");
  // Renewed once: the next passes see the new certificate, due in months.
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(RenewalsOf(hosts_[0]->fqdn()), 1);
  RunResult audit = Ctl({"audit", "list", "--output", "json"});
  EXPECT_TRUE(absl::StrContains(audit.out, "policy.renewal.start")) << audit.out;
  EXPECT_TRUE(absl::StrContains(audit.out, "lead time")) << audit.out;
  ASSERT_TRUE(WaitFor([&] { return !receiver_->Events("certificate.expiring").empty(); },
                      absl::Seconds(30)));
  Struct expiring = receiver_->Events("certificate.expiring")[0];
  EXPECT_EQ(Str(expiring, "subject"), hosts_[0]->fqdn());
}

}  // namespace
}  // namespace certfleet::testing
