#pragma once

// A controller over a simulated fleet, for the tests of campaigns and of the policy scheduler.
//
// The controller side is real: a SqliteStore in a temporary directory, the Fleet, the
// CommandService, the builtin issuer over a seeded ControllerPki, an Executor with one thread,
// the RenewalService, the AuditLog, the CampaignService and the PolicyScheduler, all on a
// FakeClock. The agents are simulated: SimulatedAgents answers every command the controller
// sends on a thread of its own, as the real agent does (renew: a CSR per the profile; install:
// succeeded; rebind: event 20053 and the channel serial of the certificate it bound, or, for a
// host marked failing, a rebind that failed and was rolled back). A host that is offline has no
// stream attached to the Fleet. A restart destroys every controller object (after the executor
// ran what was posted) and builds new ones over the same database and CA directory; the agents
// reconnect to the new controller.
//
//   FleetHarness h;
//   ASSERT_TRUE(h.Boot().ok());
//   ASSERT_TRUE(h.AddHost({.id = "a1", .fqdn = "a1.corp.example", .expires_in = 20d}).ok());
//   auto view = h.campaigns().Create(...);
//   h.campaigns().Start(view->campaign.id, "alice");
//   EXPECT_TRUE(h.WaitUntil([&] { return ...; }));
//
// Waits are bounded: WaitUntil polls in real time for at most its timeout.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/crypto/openssl_types.h"
#include "common/executor/executor.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "controller/audit/audit_log.h"
#include "controller/ca/builtin/builtin_issuer.h"
#include "controller/ca/controller_pki.h"
#include "controller/campaigns/campaign_service.h"
#include "controller/commands/command_service.h"
#include "controller/config/config.h"
#include "controller/fleet/agent_channel.h"
#include "controller/fleet/fleet.h"
#include "controller/policy/rate_budget.h"
#include "controller/renewal/renewal_service.h"
#include "controller/scheduler/policy_scheduler.h"
#include "controller/store/records.h"
#include "controller/store/store.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/recording_notifier.h"
#include "tests/testing/test_pki.h"

namespace certfleet::testing {

// A certificate in a simulated host's personal store, as its inventory reports it. No X.509
// object stands behind it: only what the controller reads from an inventory.
struct SimCert {
  std::string thumbprint;      // 40 uppercase hex digits
  std::string serial;          // display form
  std::string channel_serial;  // the serial's bytes reversed
  absl::Time not_before;
  absl::Time not_after;
  std::vector<std::string> problems;
};

// A certificate whose thumbprint and serial are derived from `seed` (distinct seeds, distinct
// certificates).
SimCert FakeCert(absl::string_view seed, absl::Time not_before, absl::Time not_after);

// The inventory row of `cert` on `agent_id` (store My).
controller::store::CertificateRecord InventoryRow(absl::string_view agent_id,
                                                  absl::string_view fqdn, const SimCert& cert,
                                                  bool bound);

// The agents of the fleet: answers what the controller sends, one command at a time, on a
// thread of its own. Commands are answered once per id: a command sent again (after a
// reconnect) gets the outcome it got the first time, as the real agent's journal does.
//
// Thread-safe.
class SimulatedAgents {
 public:
  // Hands an outcome to the controller (CommandService::OnCommandDone).
  using DoneFn = std::function<void(const std::string& agent, const std::string& command_id,
                                    const common::model::CommandOutcome& outcome)>;
  // True for a command that is to be parked instead of answered.
  using HoldFn = std::function<bool(const std::string& agent, const common::model::Command&)>;

  // `keys` makes the hosts' keys (pooled; one per host, reused across its renewals).
  SimulatedAgents(const TestPki& keys, common::Clock& clock);
  ~SimulatedAgents();
  SimulatedAgents(const SimulatedAgents&) = delete;
  SimulatedAgents& operator=(const SimulatedAgents&) = delete;

  // A host with `fqdn`, whose binding points at `bound` (nullptr: no binding).
  void AddHost(const std::string& agent_id, const std::string& fqdn, const SimCert* bound);
  // `cert` is in the host's personal store (a rebind to it can succeed).
  void AddCertificate(const std::string& agent_id, const SimCert& cert);
  // A failing host's rebinds fail verification and are rolled back (20050, then 20053 of the
  // certificate bound before).
  void SetFailing(const std::string& agent_id, bool failing);

  // A stream for the Fleet: what the controller sends on it reaches the host.
  std::shared_ptr<controller::fleet::AgentChannel> NewChannel(const std::string& agent_id);

  // Parks the commands `hold` matches (from now on) instead of answering them.
  void Hold(HoldFn hold);
  // Stops holding and answers the parked commands.
  void Release();
  size_t ParkedCount() const;

  // Starts handing outcomes to `done`.
  void Connect(DoneFn done);
  // Stops handing outcomes (waits out one being handed over), stops holding, and forgets the
  // commands queued and parked: the streams they came on are gone. The hosts keep their state.
  void Disconnect();

  // Every command handed to `agent_id` (answered or parked), oldest first.
  std::vector<common::model::Command> Received(const std::string& agent_id) const;
  // The channel serial the host's binding points at now.
  std::string BoundChannelSerial(const std::string& agent_id) const;

 private:
  struct Host {
    std::string fqdn;
    bool failing = false;
    std::string bound;                         // channel serial
    std::map<std::string, std::string> certs;  // thumbprint -> channel serial
    common::crypto::EvpPkeyPtr key;            // made at the first renew command
    std::vector<common::model::Command> received;
  };
  struct Item {
    std::string agent;
    common::model::Command command;
  };
  class Channel;

  void Enqueue(uint64_t epoch, const std::string& agent, const common::model::Command& command);
  void Loop();
  common::model::CommandOutcome Answer(const std::string& agent,
                                       const common::model::Command& command);

  const TestPki& keys_;
  common::Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Host> hosts_ ABSL_GUARDED_BY(mu_);
  std::vector<Item> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Item> parked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, common::model::CommandOutcome> answered_ ABSL_GUARDED_BY(mu_);
  HoldFn hold_ ABSL_GUARDED_BY(mu_);
  DoneFn done_ ABSL_GUARDED_BY(mu_);
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped by Disconnect: streams of an earlier epoch are gone and deliver nothing.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<std::thread> thread_;
};

// One simulated host.
struct HostSpec {
  std::string id;
  std::string fqdn;
  std::map<std::string, std::string> labels;
  bool online = true;
  bool failing = false;
  // The bound certificate: valid until now + expires_in, for `lifetime`. No bound certificate
  // (and no binding) when `unbound`.
  absl::Duration expires_in = absl::Hours(24 * 60);
  absl::Duration lifetime = absl::Hours(24 * 365);
  bool unbound = false;
  // When set, the bound certificate itself (expires_in and lifetime are not used).
  std::optional<SimCert> bound_cert;
  std::vector<std::string> bound_problems;  // problem codes of the bound certificate
  std::vector<std::string> drift;           // drift codes of the binding
  // More certificates in My, not bound.
  std::vector<SimCert> more;
};

// What the harness knows of a host it added.
struct SimHost {
  HostSpec spec;
  std::optional<SimCert> bound;
};

// The controller, its state directory and the simulated fleet. Not thread-safe: drive it from
// the test's thread.
class FleetHarness {
 public:
  FleetHarness();
  ~FleetHarness();

  // Builds the controller objects over the state directory (the first time: creates it).
  absl::Status Boot();
  // Runs what the executor was given, then destroys every controller object.
  void Shutdown();
  // Shutdown, Boot, and every online host reconnects; then the renewal jobs and campaigns are
  // resumed (RenewalService::Tick, CampaignService::Tick) as the controller does at start.
  absl::Status Restart();

  // Stores the agent with its inventory (reported now) and, when online, connects it.
  absl::Status AddHost(const HostSpec& spec);
  // The host opens a stream: the controller re-sends what it has not finished.
  absl::Status Connect(const std::string& agent_id);
  // The host reports a full inventory now: `certs` (each bound when its channel serial is
  // `binding`), the binding and the drift codes.
  absl::Status ReportInventory(const std::string& agent_id, const std::vector<SimCert>& certs,
                               const std::string& binding,
                               const std::vector<std::string>& drift = {});

  // Waits (in real time, at most `timeout`) until `done` is true. False on timeout.
  bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10));
  // Waits until the executor has run every task posted before this call. False on timeout.
  bool Settle(absl::Duration timeout = absl::Seconds(10));

  // Renewal jobs that entered a state, in order, as the state listener saw them.
  struct RenewalEvent {
    int seq = 0;
    std::string renewal_id;
    std::string agent_id;
    common::model::RenewalState state;
  };
  std::vector<RenewalEvent> RenewalEvents() const;
  // The most renewal jobs active at once, counted in the store at every state a job entered.
  int PeakActiveRenewals() const;

  FakeClock& clock() { return clock_; }
  const TestPki& ca() const { return ca_; }
  SimulatedAgents& agents() { return agents_; }
  RecordingNotifier& notifier() { return notifier_; }
  // Read at Boot (windows, rate limits) and by every scheduler pass.
  controller::config::ControllerConfig& config() { return config_; }
  std::map<std::string, common::model::CertificateProfile>& profiles() { return profiles_; }
  const SimHost& host(const std::string& id) const { return hosts_.at(id); }

  controller::store::Store& store() { return *c_->store; }
  controller::fleet::Fleet& fleet() { return *c_->fleet; }
  controller::commands::CommandService& commands() { return *c_->commands; }
  controller::renewal::RenewalService& renewals() { return *c_->renewals; }
  controller::audit::AuditLog& audit() { return *c_->audit; }
  controller::campaigns::CampaignService& campaigns() { return *c_->campaigns; }
  controller::scheduler::PolicyScheduler& scheduler() { return *c_->scheduler; }
  controller::policy::RateBudgets& budgets() { return *c_->budgets; }

 private:
  // What one controller process holds in memory.
  struct Controller {
    std::unique_ptr<controller::store::Store> store;
    std::unique_ptr<controller::fleet::Fleet> fleet;
    std::unique_ptr<controller::commands::CommandService> commands;
    std::unique_ptr<controller::ca::BuiltinIssuer> builtin;
    std::map<std::string, controller::ca::Issuer*> issuers;
    std::map<std::string, controller::config::WindowConfig> windows;
    std::unique_ptr<common::Executor> executor;
    std::unique_ptr<controller::renewal::RenewalService> renewals;
    std::unique_ptr<controller::audit::AuditLog> audit;
    std::unique_ptr<controller::policy::RateBudgets> budgets;
    std::unique_ptr<controller::campaigns::CampaignService> campaigns;
    std::unique_ptr<controller::scheduler::PolicyScheduler> scheduler;
  };

  // Records that `record` entered its state, and how many jobs are active in `db` now.
  void Observe(const controller::store::RenewalRecord& record, controller::store::Store& db);

  TempDir dir_;
  FakeClock clock_;
  TestPki ca_;
  std::unique_ptr<controller::ca::ControllerPki> pki_;
  SimulatedAgents agents_;
  RecordingNotifier notifier_;
  controller::config::ControllerConfig config_;
  std::map<std::string, common::model::CertificateProfile> profiles_;
  std::map<std::string, SimHost> hosts_;
  std::set<std::string> connected_;  // hosts with a stream (they reconnect after a restart)
  std::unique_ptr<Controller> c_;

  mutable absl::Mutex events_mu_;
  std::vector<RenewalEvent> events_ ABSL_GUARDED_BY(events_mu_);
  int peak_active_ ABSL_GUARDED_BY(events_mu_) = 0;
};

}  // namespace certfleet::testing
