#include "tests/controller/campaigns/fleet_harness.h"

#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/crypto/csr.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "common/scom/channel_serial.h"
#include "controller/store/sqlite/sqlite_store.h"

namespace certfleet::testing {

namespace model = common::model;
namespace store = controller::store;

namespace {

model::CommandOutcome Succeeded(absl::string_view detail) {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kSucceeded;
  outcome.code = absl::StatusCode::kOk;
  outcome.result.detail = std::string(detail);
  return outcome;
}

model::CommandOutcome Failed(absl::string_view error) {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kFailed;
  outcome.code = absl::StatusCode::kFailedPrecondition;
  outcome.error = std::string(error);
  return outcome;
}

// Midnight UTC of the day `t` falls on: windows in the tests are times of that day.
absl::Time StartOfDay(absl::Time t) {
  const absl::CivilDay day = absl::ToCivilDay(t, absl::UTCTimeZone());
  return absl::FromCivil(day, absl::UTCTimeZone());
}

}  // namespace

SimCert FakeCert(absl::string_view seed, absl::Time not_before, absl::Time not_after) {
  SimCert cert;
  cert.thumbprint = common::crypto::Sha1Hex(absl::StrCat("thumbprint/", seed));
  // 0x01 first: a positive INTEGER without a sign byte.
  cert.serial =
      absl::StrCat("01", common::crypto::Sha256Hex(absl::StrCat("serial/", seed)).substr(0, 30));
  cert.channel_serial = *common::scom::ChannelSerialFromDisplay(cert.serial);
  cert.not_before = not_before;
  cert.not_after = not_after;
  return cert;
}

store::CertificateRecord InventoryRow(absl::string_view agent_id, absl::string_view fqdn,
                                      const SimCert& cert, bool bound) {
  store::CertificateRecord row;
  row.agent_id = std::string(agent_id);
  row.store = "My";
  row.info.subject = absl::StrCat("CN=", fqdn);
  row.info.subject_cn = std::string(fqdn);
  row.info.issuer = "CN=Test Enterprise CA";
  row.info.dns_names = {std::string(fqdn)};
  row.info.serial = cert.serial;
  row.info.channel_serial = cert.channel_serial;
  row.info.thumbprint = cert.thumbprint;
  row.info.not_before = cert.not_before;
  row.info.not_after = cert.not_after;
  row.info.key_algorithm = "RSA";
  row.info.key_bits = 2048;
  row.info.signature_hash = "SHA256";
  row.info.has_private_key = true;
  row.problems = cert.problems;
  row.bound = bound;
  return row;
}

// --- SimulatedAgents ---

class SimulatedAgents::Channel final : public controller::fleet::AgentChannel {
 public:
  Channel(SimulatedAgents& agents, std::string agent_id, uint64_t epoch)
      : agents_(agents), agent_id_(std::move(agent_id)), epoch_(epoch) {}

  void SendCommand(const model::Command& command) override {
    agents_.Enqueue(epoch_, agent_id_, command);
  }
  void SendCancel(absl::string_view) override {}
  void SendCommandAck(absl::string_view) override {}
  void Close(const absl::Status&) override {}

 private:
  SimulatedAgents& agents_;
  const std::string agent_id_;
  const uint64_t epoch_;
};

SimulatedAgents::SimulatedAgents(const TestPki& keys, common::Clock& clock)
    : keys_(keys), clock_(clock) {
  thread_ = std::make_unique<std::thread>([this] { Loop(); });
}

SimulatedAgents::~SimulatedAgents() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_->join();
}

void SimulatedAgents::AddHost(const std::string& agent_id, const std::string& fqdn,
                              const SimCert* bound) {
  absl::MutexLock lock(&mu_);
  Host& host = hosts_[agent_id];
  host.fqdn = fqdn;
  if (bound != nullptr) {
    host.bound = bound->channel_serial;
    host.certs[bound->thumbprint] = bound->channel_serial;
  }
}

void SimulatedAgents::AddCertificate(const std::string& agent_id, const SimCert& cert) {
  absl::MutexLock lock(&mu_);
  hosts_[agent_id].certs[cert.thumbprint] = cert.channel_serial;
}

void SimulatedAgents::SetFailing(const std::string& agent_id, bool failing) {
  absl::MutexLock lock(&mu_);
  hosts_[agent_id].failing = failing;
}

std::shared_ptr<controller::fleet::AgentChannel> SimulatedAgents::NewChannel(
    const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  return std::make_shared<Channel>(*this, agent_id, epoch_);
}

void SimulatedAgents::Hold(HoldFn hold) {
  absl::MutexLock lock(&mu_);
  hold_ = std::move(hold);
}

void SimulatedAgents::Release() {
  absl::MutexLock lock(&mu_);
  hold_ = nullptr;
  for (Item& item : parked_) queue_.push_back(std::move(item));
  parked_.clear();
}

size_t SimulatedAgents::ParkedCount() const {
  absl::MutexLock lock(&mu_);
  return parked_.size();
}

void SimulatedAgents::Connect(DoneFn done) {
  absl::MutexLock lock(&mu_);
  done_ = std::move(done);
}

void SimulatedAgents::Disconnect() {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  done_ = nullptr;
  hold_ = nullptr;
  mu_.Await(absl::Condition(
      +[](bool* delivering) { return !*delivering; }, &delivering_));
  queue_.clear();
  parked_.clear();
}

std::vector<model::Command> SimulatedAgents::Received(const std::string& agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(agent_id);
  return it == hosts_.end() ? std::vector<model::Command>{} : it->second.received;
}

std::string SimulatedAgents::BoundChannelSerial(const std::string& agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(agent_id);
  return it == hosts_.end() ? "" : it->second.bound;
}

void SimulatedAgents::Enqueue(uint64_t epoch, const std::string& agent,
                              const model::Command& command) {
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;  // a stream of a controller that is gone
  queue_.push_back(Item{agent, command});
}

void SimulatedAgents::Loop() {
  while (true) {
    Item item;
    DoneFn done;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SimulatedAgents* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || (self->done_ != nullptr && !self->queue_.empty());
          },
          this));
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.erase(queue_.begin());
      hosts_[item.agent].received.push_back(item.command);
      if (hold_ != nullptr && hold_(item.agent, item.command)) {
        parked_.push_back(std::move(item));
        continue;
      }
      done = done_;
      delivering_ = true;
    }
    model::CommandOutcome outcome = Answer(item.agent, item.command);
    done(item.agent, item.command.id, outcome);
    absl::MutexLock lock(&mu_);
    delivering_ = false;
  }
}

model::CommandOutcome SimulatedAgents::Answer(const std::string& agent,
                                              const model::Command& command) {
  std::string fqdn;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = answered_.find(command.id); it != answered_.end()) return it->second;
    fqdn = hosts_[agent].fqdn;
  }
  model::CommandOutcome outcome;
  if (const auto* renew = std::get_if<model::RenewPayload>(&command.payload)) {
    const model::CertificateProfile& profile = renew->profile;
    EVP_PKEY* key = nullptr;
    {
      absl::MutexLock lock(&mu_);
      Host& host = hosts_[agent];
      if (host.key == nullptr) host.key = keys_.NewRsaKey(profile.key_bits);
      key = host.key.get();
    }
    common::crypto::CsrOptions options;
    options.subject_cn = fqdn;
    options.dns_names = {fqdn};
    for (const std::string& dns : profile.extra_dns_names) options.dns_names.push_back(dns);
    options.key_usage = profile.key_usage;
    options.extended_key_usage = profile.extended_key_usage;
    options.template_name = profile.template_name;
    options.signature_digest = profile.signature_hash;
    absl::StatusOr<common::crypto::X509ReqPtr> csr = common::crypto::BuildCsr(key, options);
    if (!csr.ok()) {
      outcome = Failed(csr.status().message());
    } else {
      outcome = Succeeded("key and CSR made");
      outcome.result.csr_pem = common::crypto::CsrToPem(csr->get());
    }
  } else if (const auto* install = std::get_if<model::InstallPayload>(&command.payload)) {
    auto chain = common::crypto::CertificatesFromPem(install->chain_pem);
    absl::StatusOr<model::CertificateInfo> leaf =
        chain.ok() ? common::crypto::DescribeCertificate(chain->front().get(), true)
                   : absl::StatusOr<model::CertificateInfo>(chain.status());
    if (!leaf.ok()) {
      outcome = Failed(leaf.status().message());
    } else {
      absl::MutexLock lock(&mu_);
      hosts_[agent].certs[leaf->thumbprint] = leaf->channel_serial;
      outcome = Succeeded("installed");
      outcome.result.thumbprint = leaf->thumbprint;
    }
  } else if (const auto* rebind = std::get_if<model::RebindPayload>(&command.payload)) {
    const absl::Time now = clock_.Now();
    absl::MutexLock lock(&mu_);
    Host& host = hosts_[agent];
    auto cert = host.certs.find(rebind->thumbprint);
    if (cert == host.certs.end()) {
      outcome = Failed(absl::StrCat("no certificate ", rebind->thumbprint, " in My"));
    } else if (host.failing) {
      outcome = Failed("no 20053 after the restart (20050); previous binding restored");
      outcome.result.previous_channel_serial = host.bound;
      outcome.result.channel_serial = host.bound;
      outcome.result.rolled_back = true;
      outcome.result.events = {
          {now, 20050, "Error", "The certificate could not be loaded"},
          {now, 20053, "Information", "The HealthService loaded the previous certificate"}};
    } else {
      outcome = Succeeded("bound and verified");
      outcome.result.previous_channel_serial = host.bound;
      outcome.result.channel_serial = cert->second;
      outcome.result.events = {
          {now, 20053, "Information", "The HealthService loaded the certificate"}};
      host.bound = cert->second;
    }
  } else {
    outcome = Succeeded("done");
  }
  absl::MutexLock lock(&mu_);
  answered_.emplace(command.id, outcome);
  return outcome;
}

// --- FleetHarness ---

FleetHarness::FleetHarness()
    : clock_(StartOfDay(absl::Now())), ca_(TestPki::Create(absl::Now())), agents_(ca_, clock_) {
  profiles_["scom"] = model::ScomProfile();
}

FleetHarness::~FleetHarness() { Shutdown(); }

absl::Status FleetHarness::Boot() {
  if (pki_ == nullptr) {
    auto pki = LoadSeededControllerPki(dir_.path() + "/state", ca_, clock_);
    if (!pki.ok()) return pki.status();
    pki_ = std::move(*pki);
  }
  auto c = std::make_unique<Controller>();
  auto opened = store::SqliteStore::Open({.path = dir_.path() + "/controller.db"});
  if (!opened.ok()) return opened.status();
  c->store = std::move(*opened);
  c->fleet = std::make_unique<controller::fleet::Fleet>(*c->store, clock_);
  c->commands =
      std::make_unique<controller::commands::CommandService>(*c->store, *c->fleet, clock_);
  c->builtin = std::make_unique<controller::ca::BuiltinIssuer>(
      controller::ca::BuiltinIssuerDeps{.pki = *pki_, .store = *c->store, .clock = clock_});
  c->issuers[c->builtin->Name()] = c->builtin.get();
  for (const auto& w : config_.windows) c->windows[w.name] = w;
  c->executor = std::make_unique<common::Executor>(1);
  c->renewals = std::make_unique<controller::renewal::RenewalService>(
      controller::renewal::RenewalDeps{.store = *c->store,
                                       .commands = *c->commands,
                                       .executor = *c->executor,
                                       .clock = clock_,
                                       .issuers = c->issuers,
                                       .profiles = profiles_},
      controller::renewal::RenewalOptions{});
  auto audit = controller::audit::AuditLog::Open(dir_.path() + "/state", *c->store, clock_);
  if (!audit.ok()) return audit.status();
  c->audit = std::move(*audit);
  c->budgets = std::make_unique<controller::policy::RateBudgets>(clock_);
  for (const auto& r : config_.rate_limits) c->budgets->Set(r.issuer, r.per_hour, r.burst);
  controller::campaigns::CampaignOptions campaign_options;
  campaign_options.default_issuer = config_.default_issuer;
  c->campaigns = std::make_unique<controller::campaigns::CampaignService>(
      controller::campaigns::CampaignDeps{.store = *c->store,
                                          .renewals = *c->renewals,
                                          .commands = *c->commands,
                                          .fleet = *c->fleet,
                                          .executor = *c->executor,
                                          .clock = clock_,
                                          .profiles = profiles_,
                                          .issuers = c->issuers,
                                          .windows = c->windows,
                                          .audit = c->audit.get(),
                                          .notifier = &notifier_},
      campaign_options);
  c->scheduler = std::make_unique<controller::scheduler::PolicyScheduler>(
      controller::scheduler::SchedulerDeps{.store = *c->store,
                                           .renewals = *c->renewals,
                                           .commands = *c->commands,
                                           .fleet = *c->fleet,
                                           .clock = clock_,
                                           .config = config_,
                                           .budgets = *c->budgets,
                                           .campaigns = c->campaigns.get(),
                                           .audit = c->audit.get(),
                                           .notifier = &notifier_});
  controller::renewal::RenewalService* renewals = c->renewals.get();
  c->commands->SetFinalListener(
      [renewals](const store::CommandRecord& record) { renewals->OnCommandFinal(record); });
  controller::campaigns::CampaignService* campaigns = c->campaigns.get();
  store::Store* db = c->store.get();
  c->renewals->SetStateListener([this, campaigns, db](const store::RenewalRecord& record) {
    // As the controller does (automation.cc): campaigns follow their jobs.
    campaigns->OnRenewalState(record);
    Observe(record, *db);
  });
  controller::commands::CommandService* commands = c->commands.get();
  agents_.Connect([commands](const std::string& agent, const std::string& id,
                             const model::CommandOutcome& outcome) {
    // An agent's report: errors (an unknown agent) are the controller's answer, not the test's.
    (void)commands->OnCommandDone(agent, id, outcome);
  });
  c_ = std::move(c);
  return absl::OkStatus();
}

void FleetHarness::Shutdown() {
  if (c_ == nullptr) return;
  agents_.Disconnect();
  // Runs what was posted, then joins: nothing runs on an object that is being destroyed.
  c_->executor->Shutdown();
  c_.reset();
}

absl::Status FleetHarness::Restart() {
  Shutdown();
  if (absl::Status s = Boot(); !s.ok()) return s;
  for (const std::string& id : std::set<std::string>(connected_)) {
    if (absl::Status s = Connect(id); !s.ok()) return s;
  }
  c_->renewals->Tick();
  c_->campaigns->Tick();
  return absl::OkStatus();
}

absl::Status FleetHarness::AddHost(const HostSpec& spec) {
  const absl::Time now = clock_.Now();
  store::AgentRecord agent;
  agent.id = spec.id;
  agent.fqdn = spec.fqdn;
  agent.labels = spec.labels;
  agent.enrolled_at = now - absl::Hours(1);
  if (absl::Status s = c_->store->CreateAgent(agent); !s.ok()) return s;
  SimHost host;
  host.spec = spec;
  std::vector<SimCert> certs;
  if (spec.bound_cert) {
    host.bound = *spec.bound_cert;
  } else if (!spec.unbound) {
    const absl::Time not_after = now + spec.expires_in;
    host.bound = FakeCert(absl::StrCat(spec.id, "/bound"), not_after - spec.lifetime, not_after);
  }
  if (host.bound) {
    for (const std::string& code : spec.bound_problems) host.bound->problems.push_back(code);
    certs.push_back(*host.bound);
  }
  for (const SimCert& more : spec.more) certs.push_back(more);
  agents_.AddHost(spec.id, spec.fqdn, host.bound ? &*host.bound : nullptr);
  for (const SimCert& more : spec.more) agents_.AddCertificate(spec.id, more);
  agents_.SetFailing(spec.id, spec.failing);
  hosts_[spec.id] = host;
  if (absl::Status s =
          ReportInventory(spec.id, certs, host.bound ? host.bound->channel_serial : "", spec.drift);
      !s.ok()) {
    return s;
  }
  if (spec.online) return Connect(spec.id);
  return absl::OkStatus();
}

absl::Status FleetHarness::Connect(const std::string& agent_id) {
  connected_.insert(agent_id);
  c_->fleet->Attach(agent_id, agents_.NewChannel(agent_id));
  return c_->commands->OnAgentAttached(agent_id);
}

absl::Status FleetHarness::ReportInventory(const std::string& agent_id,
                                           const std::vector<SimCert>& certs,
                                           const std::string& binding,
                                           const std::vector<std::string>& drift) {
  auto agent = c_->store->GetAgent(agent_id);
  if (!agent.ok()) return agent.status();
  std::vector<store::CertificateRecord> rows;
  for (const SimCert& cert : certs) {
    rows.push_back(InventoryRow(agent_id, agent->fqdn, cert,
                                !binding.empty() && cert.channel_serial == binding));
  }
  store::BindingRecord record;
  record.channel_serial = binding;
  record.drift = drift;
  return c_->store->ReplaceInventory(agent_id, agent->inventory_generation + 1, rows, record,
                                     clock_.Now());
}

bool FleetHarness::WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

bool FleetHarness::Settle(absl::Duration timeout) {
  auto ran = std::make_shared<absl::Notification>();
  if (!c_->executor->Post([ran] { ran->Notify(); })) return false;
  return ran->WaitForNotificationWithTimeout(timeout);
}

std::vector<FleetHarness::RenewalEvent> FleetHarness::RenewalEvents() const {
  absl::MutexLock lock(&events_mu_);
  return events_;
}

int FleetHarness::PeakActiveRenewals() const {
  absl::MutexLock lock(&events_mu_);
  return peak_active_;
}

void FleetHarness::Observe(const store::RenewalRecord& record, store::Store& db) {
  store::RenewalFilter filter;
  filter.active_only = true;
  auto active = db.ListRenewals(filter);
  absl::MutexLock lock(&events_mu_);
  events_.push_back(
      RenewalEvent{static_cast<int>(events_.size()), record.id, record.agent_id, record.state});
  if (active.ok()) peak_active_ = std::max(peak_active_, static_cast<int>(active->size()));
}

}  // namespace certfleet::testing
