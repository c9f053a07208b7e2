// RenewalService over real components: a SqliteStore in a temporary directory, the real Fleet
// and CommandService, the builtin and manual issuers and the approval queue over a seeded
// ControllerPki, and an Executor with one thread that runs the job's steps. The test plays the
// agent: a recording AgentChannel captures what the controller sends, and the test answers each
// command through CommandService::OnCommandDone as an agent would (for the renew command: a new
// key and a real CSR per the profile it carries). The executor moves the job asynchronously, so
// the tests wait for it by polling the store, always with a bound.

#include "controller/renewal/renewal_service.h"

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/csr.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/executor/executor.h"
#include "common/model/command.h"
#include "common/model/profile.h"
#include "common/model/renewal.h"
#include "controller/ca/builtin/builtin_issuer.h"
#include "controller/ca/controller_pki.h"
#include "controller/ca/issuer.h"
#include "controller/ca/manual/approval_queue.h"
#include "controller/ca/manual/manual_issuer.h"
#include "controller/commands/command_service.h"
#include "controller/fleet/agent_channel.h"
#include "controller/fleet/fleet.h"
#include "controller/store/records.h"
#include "controller/store/sqlite/sqlite_store.h"
#include "controller/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/seeded_pki.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_pki.h"

namespace certfleet::common::model {

// Failure messages name the states ("pending_approval") instead of printing their bytes.
inline void PrintTo(RenewalState state, std::ostream* os) { *os << RenewalStateName(state); }

}  // namespace certfleet::common::model

namespace certfleet::controller::renewal {
namespace {

using ::certfleet::testing::FakeClock;
using ::certfleet::testing::TempDir;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;
namespace model = common::model;
using model::CommandState;
using model::RenewalState;

constexpr absl::string_view kAgent = "agent-1";
constexpr absl::string_view kFqdn = "scom1.corp.example.com";
constexpr absl::string_view kOtherAgent = "agent-2";
constexpr absl::string_view kOtherFqdn = "dc01.corp.example.com";

// Every wait for the executor is bounded by this.
constexpr absl::Duration kWait = absl::Seconds(5);

// The renewal options of every controller in these tests.
constexpr absl::Duration kPollInterval = absl::Seconds(5);
constexpr absl::Duration kManualPollInterval = absl::Seconds(30);
constexpr absl::Duration kVerifyTimeout = absl::Seconds(90);

// agent-1's stream as the controller sees it: records every command it is asked to send.
// Thread-safe: the executor sends from its thread while the test reads from its own.
class RecordingChannel final : public fleet::AgentChannel {
 public:
  void SendCommand(const model::Command& command) override {
    absl::MutexLock lock(&mu_);
    commands_.push_back(command);
  }
  void SendCancel(absl::string_view) override {}
  void SendCommandAck(absl::string_view) override {}
  void Close(const absl::Status&) override {}

  // The command sent last with id `id`, if any was.
  std::optional<model::Command> Find(absl::string_view id) const {
    absl::MutexLock lock(&mu_);
    for (auto it = commands_.rbegin(); it != commands_.rend(); ++it) {
      if (it->id == id) return *it;
    }
    return std::nullopt;
  }

  // Ids of the commands sent, in order (a re-sent command appears again).
  std::vector<std::string> CommandIds() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const auto& c : commands_) ids.push_back(c.id);
    return ids;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<model::Command> commands_ ABSL_GUARDED_BY(mu_);
};

// What a controller process holds in memory, over the state it shares with the next process:
// the database file and the CA directory. Destroying one and making another over the same
// directory is a controller restart.
struct Controller {
  ~Controller() {
    // Runs what was posted, then joins: no step runs on a service that is being destroyed.
    if (executor != nullptr) executor->Shutdown();
  }

  std::unique_ptr<store::Store> store;
  std::unique_ptr<fleet::Fleet> fleet;
  std::unique_ptr<commands::CommandService> commands;
  std::unique_ptr<ca::BuiltinIssuer> builtin;
  std::unique_ptr<ca::ManualIssuer> manual;
  std::unique_ptr<ca::ApprovalQueue> approvals;
  std::map<std::string, ca::Issuer*> issuers;
  std::map<std::string, model::CertificateProfile> profiles;
  std::unique_ptr<common::Executor> executor;
  std::unique_ptr<RenewalService> renewals;
};

model::CommandOutcome Succeeded() {
  model::CommandOutcome outcome;
  outcome.state = CommandState::kSucceeded;
  outcome.code = absl::StatusCode::kOk;
  outcome.result.detail = "done";
  return outcome;
}

model::CommandOutcome Failed(std::string error) {
  model::CommandOutcome outcome;
  outcome.state = CommandState::kFailed;
  outcome.code = absl::StatusCode::kFailedPrecondition;
  outcome.error = std::move(error);
  return outcome;
}

// A verified rebind: the HealthService loaded the new certificate (event 20053).
model::CommandOutcome BindVerified(absl::Time at) {
  model::CommandOutcome outcome = Succeeded();
  outcome.result.previous_channel_serial = "0A0B0C";
  outcome.result.channel_serial = "0D0E0F";
  outcome.result.events = {{at, 20053, "Information", "The HealthService loaded the certificate"}};
  outcome.result.detail = "bound and verified";
  return outcome;
}

// A rebind that failed verification (event 20072) and restored the previous binding.
model::CommandOutcome BindRolledBack(absl::Time at) {
  model::CommandOutcome outcome = Failed("no 20053 within 90s (20072); previous binding restored");
  outcome.result.previous_channel_serial = "0A0B0C";
  outcome.result.channel_serial = "0A0B0C";
  outcome.result.rolled_back = true;
  outcome.result.events = {{at, 20072, "Error", "The certificate could not be used"}};
  return outcome;
}

std::vector<RenewalState> States(const store::RenewalRecord& r) {
  std::vector<RenewalState> states;
  for (const auto& step : r.steps) states.push_back(step.state);
  return states;
}

std::string StatesText(const store::RenewalRecord& r) {
  std::string text;
  for (const auto& step : r.steps) {
    absl::StrAppend(&text, text.empty() ? "" : " -> ", model::RenewalStateName(step.state),
                    step.note.empty() ? "" : absl::StrCat(" (", step.note, ")"));
  }
  return text;
}

class RenewalServiceTest : public ::testing::Test {
 protected:
  RenewalServiceTest()
      : clock_(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))),  // whole seconds
        ca_(TestPki::Create(absl::Now())) {}

  void SetUp() override {
    auto pki = testing::LoadSeededControllerPki(dir_.path() + "/state", ca_, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    ASSERT_NO_FATAL_FAILURE(Boot());
    for (auto [id, fqdn] : {std::pair{kAgent, kFqdn}, std::pair{kOtherAgent, kOtherFqdn}}) {
      store::AgentRecord agent;
      agent.id = std::string(id);
      agent.fqdn = std::string(fqdn);
      agent.enrolled_at = clock_.Now() - absl::Hours(1);
      ASSERT_TRUE(store().CreateAgent(agent).ok());
    }
    Connect();
  }

  // Starts a controller over the state directory.
  void Boot() {
    c_ = std::make_unique<Controller>();
    auto store = store::SqliteStore::Open({.path = dir_.path() + "/controller.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    c_->store = std::move(*store);
    c_->fleet = std::make_unique<fleet::Fleet>(*c_->store, clock_);
    c_->commands = std::make_unique<commands::CommandService>(*c_->store, *c_->fleet, clock_);
    c_->builtin = std::make_unique<ca::BuiltinIssuer>(
        ca::BuiltinIssuerDeps{.pki = *pki_, .store = *c_->store, .clock = clock_});
    c_->manual = std::make_unique<ca::ManualIssuer>(
        ca::ManualIssuerDeps{.store = *c_->store, .signer = *c_->builtin, .clock = clock_},
        ca::ManualIssuerOptions{.poll_interval = kManualPollInterval});
    c_->approvals = std::make_unique<ca::ApprovalQueue>(ca::ApprovalQueueDeps{*c_->store, clock_});
    c_->issuers[c_->builtin->Name()] = c_->builtin.get();
    c_->issuers[c_->manual->Name()] = c_->manual.get();
    c_->profiles["scom"] = model::ScomProfile();
    c_->executor = std::make_unique<common::Executor>(1);
    RenewalOptions options;
    options.poll_interval = kPollInterval;
    options.verify_timeout = kVerifyTimeout;
    c_->renewals = std::make_unique<RenewalService>(RenewalDeps{.store = *c_->store,
                                                                .commands = *c_->commands,
                                                                .executor = *c_->executor,
                                                                .clock = clock_,
                                                                .issuers = c_->issuers,
                                                                .profiles = c_->profiles},
                                                    options);
    RenewalService* renewals = c_->renewals.get();
    c_->commands->SetFinalListener(
        [renewals](const store::CommandRecord& record) { renewals->OnCommandFinal(record); });
  }

  // agent-1 connects (a new stream): the controller re-sends what it has not finished.
  void Connect() {
    channel_ = std::make_shared<RecordingChannel>();
    c_->fleet->Attach(kAgent, channel_);
    ASSERT_TRUE(c_->commands->OnAgentAttached(kAgent).ok());
  }

  // The controller process ends (after the steps already posted ran) and a new one starts over
  // the same database and CA; agent-1 reconnects to it.
  void Restart() {
    c_.reset();
    channel_.reset();
    ASSERT_NO_FATAL_FAILURE(Boot());
    Connect();
  }

  store::Store& store() { return *c_->store; }
  RenewalService& renewals() { return *c_->renewals; }

  // Starts a renewal of agent-1 that must be accepted; returns its id ("" after a failure).
  std::string MustStart(absl::string_view issuer = "", bool bind = true) {
    StartRequest request;
    request.agent = std::string(kAgent);
    request.issuer = std::string(issuer);
    request.bind = bind;
    request.created_by = "alice";
    auto r = renewals().Start(request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->id : "";
  }

  store::RenewalRecord Stored(absl::string_view id) {
    auto r = store().GetRenewal(id);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : store::RenewalRecord{};
  }

  // Waits until job `id` is in `state`; fails the test (naming the steps taken) after kWait.
  store::RenewalRecord WaitForState(absl::string_view id, RenewalState state) {
    const absl::Time deadline = absl::Now() + kWait;
    while (true) {
      auto r = store().GetRenewal(id);
      if (r.ok() && r->state == state) return *r;
      if (absl::Now() > deadline) {
        ADD_FAILURE() << "renewal " << id << " did not reach " << model::RenewalStateName(state)
                      << " within " << kWait << "; "
                      << (r.ok() ? StatesText(*r) : r.status().ToString())
                      << (r.ok() && !r->failure_reason.empty() ? "; " + r->failure_reason : "");
        return r.ok() ? *r : store::RenewalRecord{};
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  }

  // Waits until the agent was sent command `id`; fails the test after kWait.
  std::optional<model::Command> WaitForCommand(absl::string_view id) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() <= deadline) {
      if (auto command = channel_->Find(id)) return command;
      absl::SleepFor(absl::Milliseconds(2));
    }
    ADD_FAILURE() << "command " << id << " was not sent within " << kWait
                  << "; sent: " << ::testing::PrintToString(channel_->CommandIds());
    return std::nullopt;
  }

  // The agent reports the outcome of command `id`, once it was sent.
  void Answer(absl::string_view id, const model::CommandOutcome& outcome) {
    if (!WaitForCommand(id)) return;
    absl::Status s = c_->commands->OnCommandDone(kAgent, id, outcome);
    EXPECT_TRUE(s.ok()) << s;
  }

  // The agent runs the renew command of job `job` as the real one does: a new key, and a CSR per
  // the profile the command carries, for `name` (CN and first SAN DNS name; the FQDN of the
  // host for an honest agent). The key is kept in keys_ under the job's id.
  void AnswerRenew(absl::string_view job, absl::string_view name = kFqdn,
                   std::vector<std::string> more_dns = {}) {
    const std::string id = absl::StrCat(job, "-renew");
    std::optional<model::Command> command = WaitForCommand(id);
    if (!command) return;
    const auto* renew = std::get_if<model::RenewPayload>(&command->payload);
    ASSERT_NE(renew, nullptr) << id << " is not a renew command";
    const model::CertificateProfile& profile = renew->profile;
    common::crypto::CsrOptions options;
    options.subject_cn = std::string(name);
    options.dns_names = {std::string(name)};
    for (const std::string& dns : profile.extra_dns_names) options.dns_names.push_back(dns);
    for (std::string& dns : more_dns) options.dns_names.push_back(std::move(dns));
    options.key_usage = profile.key_usage;
    options.extended_key_usage = profile.extended_key_usage;
    options.template_name = profile.template_name;
    options.signature_digest = profile.signature_hash;
    common::crypto::EvpPkeyPtr key = ca_.NewRsaKey(profile.key_bits);
    auto csr = common::crypto::BuildCsr(key.get(), options);
    ASSERT_TRUE(csr.ok()) << csr.status();
    model::CommandOutcome outcome = Succeeded();
    outcome.result.csr_pem = common::crypto::CsrToPem(csr->get());
    ASSERT_FALSE(outcome.result.csr_pem.empty());
    keys_[std::string(job)] = std::move(key);
    Answer(id, outcome);
  }

  // The agent carries out every command of job `job` successfully; the job must end done.
  store::RenewalRecord RunToDone(absl::string_view job) {
    AnswerRenew(job);
    Answer(absl::StrCat(job, "-trust"), Succeeded());
    Answer(absl::StrCat(job, "-install"), Succeeded());
    Answer(absl::StrCat(job, "-bind"), BindVerified(clock_.Now()));
    return WaitForState(job, RenewalState::kDone);
  }

  std::vector<store::IssuanceRecord> Issuances(absl::string_view job) {
    auto issued = store().ListIssuances(job);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? *issued : std::vector<store::IssuanceRecord>{};
  }

  // Ids of every command stored for agent-1, oldest first.
  std::vector<std::string> StoredCommandIds() {
    store::CommandFilter filter;
    filter.agent_id = std::string(kAgent);
    auto records = store().ListCommands(filter);
    EXPECT_TRUE(records.ok()) << records.status();
    std::vector<std::string> ids;
    if (records.ok()) {
      for (const auto& r : *records) ids.push_back(r.command.id);
    }
    return ids;
  }

  bool CommandStored(absl::string_view id) { return store().GetCommand(id).ok(); }

  // The only pending approval request; fails the test when there is not exactly one.
  std::string PendingRequest() {
    auto pending = c_->approvals->List(model::ApprovalState::kPending);
    EXPECT_TRUE(pending.ok()) << pending.status();
    if (!pending.ok() || pending->size() != 1) {
      ADD_FAILURE() << "expected one pending approval request";
      return "";
    }
    return pending->front().id;
  }

  TempDir dir_;
  FakeClock clock_;
  TestPki ca_;
  std::unique_ptr<ca::ControllerPki> pki_;
  std::unique_ptr<Controller> c_;
  std::shared_ptr<RecordingChannel> channel_;
  std::map<std::string, common::crypto::EvpPkeyPtr> keys_;  // by job id: the agent's new key
};

// --- The whole job ---

TEST_F(RenewalServiceTest, AJobThroughTheBuiltinIssuerRecordsEveryStepInOrderAndEndsDone) {
  StartRequest request;
  request.agent = std::string(kFqdn);  // by FQDN
  request.created_by = "alice";
  auto started = renewals().Start(request);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_THAT(started->id, StartsWith("ren-"));
  EXPECT_EQ(started->agent_id, kAgent);
  EXPECT_EQ(started->fqdn, kFqdn);
  EXPECT_EQ(started->issuer, "builtin");
  EXPECT_EQ(started->profile.name, "scom");
  EXPECT_TRUE(started->bind);
  EXPECT_EQ(started->state, RenewalState::kPlanned);
  EXPECT_EQ(started->created_by, "alice");
  EXPECT_EQ(started->created_at, clock_.Now());
  const std::string job = started->id;

  store::RenewalRecord done = RunToDone(job);
  EXPECT_THAT(
      States(done),
      ElementsAre(RenewalState::kPlanned, RenewalState::kCsrRequested, RenewalState::kCsrReceived,
                  RenewalState::kPolicyChecked, RenewalState::kSubmitted, RenewalState::kIssued,
                  RenewalState::kInstallSent, RenewalState::kInstalled, RenewalState::kBindSent,
                  RenewalState::kVerified, RenewalState::kDone))
      << StatesText(done);
  EXPECT_EQ(done.failure_reason, "");
  EXPECT_EQ(done.created_by, "alice");

  // One certificate, recorded by the issuer, is what the job holds and sent.
  std::vector<store::IssuanceRecord> issued = Issuances(job);
  ASSERT_THAT(issued, SizeIs(1));
  EXPECT_EQ(issued[0].issuer, "builtin");
  EXPECT_EQ(issued[0].agent_id, kAgent);
  EXPECT_EQ(issued[0].fqdn, kFqdn);
  EXPECT_FALSE(done.serial.empty());
  EXPECT_EQ(done.serial, issued[0].serial);
  EXPECT_EQ(done.thumbprint, issued[0].thumbprint);
  EXPECT_THAT(done.thumbprint, SizeIs(40));
  EXPECT_EQ(done.chain_pem, issued[0].certificate_pem + pki_->IssuingChainPem());
  EXPECT_FALSE(done.csr_pem.empty());
  EXPECT_EQ(done.steps[5].note, absl::StrCat("serial ", done.serial));

  // The commands, in the order the agent got them, with ids derived from the job.
  EXPECT_THAT(channel_->CommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install", job + "-bind"));
  EXPECT_EQ(done.renew_command_id, job + "-renew");
  EXPECT_EQ(done.install_command_id, job + "-install");
  EXPECT_EQ(done.bind_command_id, job + "-bind");
  auto renew = channel_->Find(job + "-renew");
  ASSERT_TRUE(renew.has_value());
  ASSERT_TRUE(std::holds_alternative<model::RenewPayload>(renew->payload));
  EXPECT_EQ(std::get<model::RenewPayload>(renew->payload).profile.name, "scom");
  auto install = channel_->Find(job + "-install");
  ASSERT_TRUE(install.has_value());
  ASSERT_TRUE(std::holds_alternative<model::InstallPayload>(install->payload));
  EXPECT_EQ(std::get<model::InstallPayload>(install->payload).chain_pem, done.chain_pem);
  EXPECT_FALSE(std::get<model::InstallPayload>(install->payload).bind);  // its own step
  auto bind = channel_->Find(job + "-bind");
  ASSERT_TRUE(bind.has_value());
  ASSERT_TRUE(std::holds_alternative<model::RebindPayload>(bind->payload));
  EXPECT_EQ(std::get<model::RebindPayload>(bind->payload).thumbprint, done.thumbprint);
  EXPECT_EQ(std::get<model::RebindPayload>(bind->payload).verify_timeout, kVerifyTimeout);

  // The rebind's evidence is kept.
  ASSERT_TRUE(done.evidence.has_value());
  EXPECT_FALSE(done.evidence->rolled_back);
  EXPECT_EQ(done.evidence->channel_serial, "0D0E0F");
  EXPECT_EQ(done.evidence->previous_channel_serial, "0A0B0C");
  ASSERT_THAT(done.evidence->events, SizeIs(1));
  EXPECT_EQ(done.evidence->events[0].id, 20053);
}

TEST_F(RenewalServiceTest, TheRootIsSentToBeTrustedBeforeTheInstallWhenTheChainEndsInIt) {
  const std::string job = MustStart();
  AnswerRenew(job);
  ASSERT_TRUE(WaitForCommand(job + "-install").has_value());
  std::vector<std::string> sent = channel_->CommandIds();
  EXPECT_THAT(sent, ElementsAre(job + "-renew", job + "-trust", job + "-install"));

  auto trust = channel_->Find(job + "-trust");
  ASSERT_TRUE(trust.has_value());
  ASSERT_TRUE(std::holds_alternative<model::TrustPayload>(trust->payload));
  // The last certificate of the issued chain, the controller's self-signed root, alone.
  auto trusted =
      common::crypto::CertificatesFromPem(std::get<model::TrustPayload>(trust->payload).data);
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  ASSERT_THAT(*trusted, SizeIs(1));
  EXPECT_EQ(common::crypto::CertificateToPem(trusted->front().get()), pki_->RootPem());
}

TEST_F(RenewalServiceTest, WithoutBindTheJobEndsDoneOnceInstalledAndSendsNoRebind) {
  const std::string job = MustStart("", /*bind=*/false);
  AnswerRenew(job);
  Answer(job + "-trust", Succeeded());
  Answer(job + "-install", Succeeded());
  store::RenewalRecord done = WaitForState(job, RenewalState::kDone);

  EXPECT_FALSE(done.bind);
  EXPECT_THAT(
      States(done),
      ElementsAre(RenewalState::kPlanned, RenewalState::kCsrRequested, RenewalState::kCsrReceived,
                  RenewalState::kPolicyChecked, RenewalState::kSubmitted, RenewalState::kIssued,
                  RenewalState::kInstallSent, RenewalState::kInstalled, RenewalState::kDone))
      << StatesText(done);
  EXPECT_THAT(done.steps.back().note, HasSubstr("not bound"));
  EXPECT_THAT(done.steps.front().note, HasSubstr("no rebind"));
  EXPECT_EQ(done.bind_command_id, "");
  EXPECT_FALSE(done.evidence.has_value());
  EXPECT_THAT(Issuances(job), SizeIs(1));
  EXPECT_THAT(channel_->CommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install"));
  EXPECT_FALSE(CommandStored(job + "-bind"));
}

// --- The CSR ---

TEST_F(RenewalServiceTest, ACsrForAnotherHostsNameFailsTheJobAndNothingIsIssued) {
  const std::string job = MustStart();
  AnswerRenew(job, kOtherFqdn);  // agent-2's registered FQDN
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, StartsWith("CSR refused by policy"));
  EXPECT_THAT(failed.failure_reason, HasSubstr(kOtherFqdn));
  EXPECT_THAT(States(failed), ElementsAre(RenewalState::kPlanned, RenewalState::kCsrRequested,
                                          RenewalState::kCsrReceived, RenewalState::kFailed))
      << StatesText(failed);
  EXPECT_EQ(failed.steps.back().note, failed.failure_reason);
  EXPECT_THAT(Issuances(job), IsEmpty());
  EXPECT_EQ(failed.serial, "");
  EXPECT_EQ(failed.chain_pem, "");
  EXPECT_THAT(StoredCommandIds(), ElementsAre(job + "-renew"));
}

TEST_F(RenewalServiceTest, ACsrThatAlsoNamesAnotherHostFailsTheJobAndNothingIsIssued) {
  const std::string job = MustStart();
  AnswerRenew(job, kFqdn, {std::string(kOtherFqdn)});
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, StartsWith("CSR refused by policy"));
  EXPECT_THAT(Issuances(job), IsEmpty());
  EXPECT_THAT(StoredCommandIds(), ElementsAre(job + "-renew"));
}

TEST_F(RenewalServiceTest, AFailedRenewCommandFailsTheJobWithTheAgentsError) {
  const std::string job = MustStart();
  Answer(job + "-renew", Failed("MachineKeys is not writable"));
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, HasSubstr("the agent made no key and CSR"));
  EXPECT_THAT(failed.failure_reason, HasSubstr("MachineKeys is not writable"));
  EXPECT_THAT(States(failed), ElementsAre(RenewalState::kPlanned, RenewalState::kCsrRequested,
                                          RenewalState::kFailed))
      << StatesText(failed);
  EXPECT_THAT(Issuances(job), IsEmpty());
  EXPECT_THAT(StoredCommandIds(), ElementsAre(job + "-renew"));
}

TEST_F(RenewalServiceTest, ARenewCommandThatSucceedsWithoutACsrFailsTheJob) {
  const std::string job = MustStart();
  Answer(job + "-renew", Succeeded());  // no csr_pem
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);
  EXPECT_THAT(failed.failure_reason, HasSubstr("the agent made no key and CSR"));
  EXPECT_THAT(Issuances(job), IsEmpty());
}

// --- The manual issuer ---

TEST_F(RenewalServiceTest, TheManualIssuerWaitsForAnOfficerAndAnApprovalNudgedEndsDone) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  store::RenewalRecord waiting = WaitForState(job, RenewalState::kPendingApproval);
  const std::string request = PendingRequest();
  EXPECT_EQ(waiting.approval_request_id, request);
  EXPECT_EQ(waiting.issuer_cookie, request);
  EXPECT_THAT(waiting.steps.back().note, HasSubstr(request));
  EXPECT_THAT(Issuances(job), IsEmpty());
  EXPECT_THAT(channel_->CommandIds(), ElementsAre(job + "-renew"));

  // An officer approves; the admin API then nudges the job, which does not wait for the poll.
  ASSERT_TRUE(c_->approvals->Approve(request, "bob").ok());
  renewals().Nudge(job);
  Answer(job + "-trust", Succeeded());
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  store::RenewalRecord done = WaitForState(job, RenewalState::kDone);

  EXPECT_THAT(States(done), ElementsAre(RenewalState::kPlanned, RenewalState::kCsrRequested,
                                        RenewalState::kCsrReceived, RenewalState::kPolicyChecked,
                                        RenewalState::kSubmitted, RenewalState::kPendingApproval,
                                        RenewalState::kIssued, RenewalState::kInstallSent,
                                        RenewalState::kInstalled, RenewalState::kBindSent,
                                        RenewalState::kVerified, RenewalState::kDone))
      << StatesText(done);
  std::vector<store::IssuanceRecord> issued = Issuances(job);
  ASSERT_THAT(issued, SizeIs(1));
  EXPECT_EQ(issued[0].issuer, "manual");
  EXPECT_EQ(done.serial, issued[0].serial);
  EXPECT_EQ(done.thumbprint, issued[0].thumbprint);
  ASSERT_TRUE(done.evidence.has_value());
  EXPECT_FALSE(done.evidence->rolled_back);
}

TEST_F(RenewalServiceTest, APendingJobSeesTheOfficersDecisionAtTheFirstTickAfterThePollInterval) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  WaitForState(job, RenewalState::kPendingApproval);
  ASSERT_TRUE(c_->approvals->Approve(PendingRequest(), "bob").ok());

  clock_.Advance(kManualPollInterval);
  renewals().Tick();
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  WaitForState(job, RenewalState::kDone);
  EXPECT_THAT(Issuances(job), SizeIs(1));
}

TEST_F(RenewalServiceTest, ATickBeforeThePollIntervalLeavesAPendingJobWaiting) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  WaitForState(job, RenewalState::kPendingApproval);
  ASSERT_TRUE(c_->approvals->Approve(PendingRequest(), "bob").ok());

  clock_.Advance(kManualPollInterval - absl::Seconds(1));
  renewals().Tick();
  c_->executor->Shutdown();  // runs whatever the tick posted
  EXPECT_EQ(Stored(job).state, RenewalState::kPendingApproval);
  EXPECT_THAT(Issuances(job), IsEmpty());
}

TEST_F(RenewalServiceTest, AnOfficersDenialFailsTheJobWithTheReason) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  WaitForState(job, RenewalState::kPendingApproval);
  const std::string request = PendingRequest();
  ASSERT_TRUE(c_->approvals->Deny(request, "bob", "not in change window 4711").ok());
  renewals().Nudge(job);
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, HasSubstr("rejected"));
  EXPECT_THAT(failed.failure_reason, HasSubstr("denied by bob"));
  EXPECT_THAT(failed.failure_reason, HasSubstr("not in change window 4711"));
  EXPECT_EQ(States(failed).back(), RenewalState::kFailed);
  EXPECT_EQ(States(failed)[States(failed).size() - 2], RenewalState::kPendingApproval);
  EXPECT_THAT(Issuances(job), IsEmpty());
  EXPECT_THAT(StoredCommandIds(), ElementsAre(job + "-renew"));
}

TEST_F(RenewalServiceTest, AChainFulfilledWithoutItsRootIsInstalledWithoutATrustCommand) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  WaitForState(job, RenewalState::kPendingApproval);
  // Signed by a stand-alone CA for the agent's key; the officer uploads the leaf and the
  // issuing CA only, so the chain ends in no self-signed root.
  TestPki elsewhere = TestPki::Create(absl::Now(), "Stand-alone CA");
  TestCert leaf = elsewhere.Issue(elsewhere.ScomLeafSpec(kFqdn), keys_[job].get());
  const std::string chain = leaf.cert_pem + elsewhere.issuing().cert_pem;
  auto fulfilled = c_->approvals->Fulfill(PendingRequest(), "bob", chain);
  ASSERT_TRUE(fulfilled.ok()) << fulfilled.status();
  renewals().Nudge(job);
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  store::RenewalRecord done = WaitForState(job, RenewalState::kDone);

  EXPECT_THAT(channel_->CommandIds(), ElementsAre(job + "-renew", job + "-install", job + "-bind"));
  EXPECT_FALSE(CommandStored(job + "-trust"));
  EXPECT_EQ(done.chain_pem, fulfilled->chain_pem);
  EXPECT_THAT(Issuances(job), IsEmpty());  // signed elsewhere: not in this controller's log
}

// --- Install and rebind ---

TEST_F(RenewalServiceTest, AFailedInstallFailsTheJobAndSendsNoRebind) {
  const std::string job = MustStart();
  AnswerRenew(job);
  Answer(job + "-trust", Succeeded());
  Answer(job + "-install", Failed("no key in MachineKeys matches the certificate"));
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, HasSubstr("install failed"));
  EXPECT_THAT(failed.failure_reason, HasSubstr("no key in MachineKeys matches the certificate"));
  EXPECT_EQ(States(failed)[States(failed).size() - 2], RenewalState::kInstallSent);
  EXPECT_FALSE(failed.serial.empty());  // issued: the serial stays known
  EXPECT_THAT(Issuances(job), SizeIs(1));
  EXPECT_FALSE(CommandStored(job + "-bind"));
  EXPECT_FALSE(failed.evidence.has_value());
}

TEST_F(RenewalServiceTest, ARebindThatRolledBackEndsRolledBackWithTheEvidence) {
  const std::string job = MustStart();
  AnswerRenew(job);
  Answer(job + "-trust", Succeeded());
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindRolledBack(clock_.Now()));
  store::RenewalRecord rolled_back = WaitForState(job, RenewalState::kRolledBack);

  EXPECT_THAT(rolled_back.failure_reason, HasSubstr("previous binding restored"));
  EXPECT_EQ(rolled_back.steps.back().state, RenewalState::kRolledBack);
  EXPECT_EQ(rolled_back.steps[rolled_back.steps.size() - 2].state, RenewalState::kBindSent);
  ASSERT_TRUE(rolled_back.evidence.has_value());
  EXPECT_TRUE(rolled_back.evidence->rolled_back);
  EXPECT_EQ(rolled_back.evidence->channel_serial, "0A0B0C");
  ASSERT_THAT(rolled_back.evidence->events, SizeIs(1));
  EXPECT_EQ(rolled_back.evidence->events[0].id, 20072);
  // Nothing is active any more: the host may be renewed again.
  store::RenewalFilter active;
  active.active_only = true;
  auto still_active = store().ListRenewals(active);
  ASSERT_TRUE(still_active.ok()) << still_active.status();
  EXPECT_THAT(*still_active, IsEmpty());
}

TEST_F(RenewalServiceTest, ARebindThatFailedWithoutRollingBackFailsTheJobWithTheEvidence) {
  const std::string job = MustStart();
  AnswerRenew(job);
  Answer(job + "-install", Succeeded());
  model::CommandOutcome outcome = Failed("the HealthService did not restart");
  outcome.result.detail = "service timeout";
  Answer(job + "-bind", outcome);
  store::RenewalRecord failed = WaitForState(job, RenewalState::kFailed);

  EXPECT_THAT(failed.failure_reason, HasSubstr("rebind failed"));
  EXPECT_THAT(failed.failure_reason, HasSubstr("the HealthService did not restart"));
  ASSERT_TRUE(failed.evidence.has_value());
  EXPECT_EQ(failed.evidence->detail, "service timeout");
}

// --- Start ---

TEST_F(RenewalServiceTest, ASecondStartWhileTheAgentHasAnActiveJobIsFailedPrecondition) {
  const std::string first = MustStart();
  WaitForState(first, RenewalState::kCsrRequested);

  for (absl::string_view agent : {kAgent, kFqdn}) {
    StartRequest again;
    again.agent = std::string(agent);
    auto r = renewals().Start(again);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(first));
  }
  auto all = store().ListRenewals(store::RenewalFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, SizeIs(1));
  EXPECT_THAT(channel_->CommandIds(), ElementsAre(first + "-renew"));

  // Another host is not held up.
  StartRequest other;
  other.agent = std::string(kOtherAgent);
  EXPECT_TRUE(renewals().Start(other).ok());
}

TEST_F(RenewalServiceTest, AHostWhoseLastJobEndedMayBeRenewedAgain) {
  const std::string first = MustStart();
  Answer(first + "-renew", Failed("disk full"));
  WaitForState(first, RenewalState::kFailed);

  const std::string second = MustStart();
  EXPECT_NE(second, first);
  RunToDone(second);
  EXPECT_EQ(Stored(first).state, RenewalState::kFailed);
}

TEST_F(RenewalServiceTest, StartForAnUnknownAgentProfileOrIssuerIsNotFoundAndStoresNothing) {
  StartRequest unknown_agent;
  unknown_agent.agent = "agent-9";
  StartRequest unknown_profile;
  unknown_profile.agent = std::string(kAgent);
  unknown_profile.profile = "webserver";
  StartRequest unknown_issuer;
  unknown_issuer.agent = std::string(kAgent);
  unknown_issuer.issuer = "adcs";
  for (const auto& [request, name] :
       {std::pair{unknown_agent, "agent-9"}, std::pair{unknown_profile, "webserver"},
        std::pair{unknown_issuer, "adcs"}}) {
    auto r = renewals().Start(request);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(name));
  }
  auto all = store().ListRenewals(store::RenewalFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, IsEmpty());
  EXPECT_THAT(StoredCommandIds(), IsEmpty());
}

TEST_F(RenewalServiceTest, ListFindsTheJobsOfAnAgentByIdOrFqdn) {
  const std::string job = MustStart();
  StartRequest other;
  other.agent = std::string(kOtherAgent);
  ASSERT_TRUE(renewals().Start(other).ok());

  for (absl::string_view agent : {kAgent, kFqdn}) {
    auto listed = renewals().List(agent, store::RenewalFilter{});
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_THAT(*listed, SizeIs(1));
    EXPECT_EQ(listed->front().id, job);
  }
  auto all = renewals().List("", store::RenewalFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, SizeIs(2));
  EXPECT_EQ(renewals().List("agent-9", store::RenewalFilter{}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(renewals().Get("ren-unknown").status().code(), absl::StatusCode::kNotFound);
}

// --- Restarts ---

TEST_F(RenewalServiceTest, ARestartWhileTheAgentMakesItsKeyLosesNothing) {
  const std::string job = MustStart();
  WaitForState(job, RenewalState::kCsrRequested);
  ASSERT_NO_FATAL_FAILURE(Restart());
  // The new stream got the renew command again (not yet final), with the same id.
  EXPECT_THAT(channel_->CommandIds(), ElementsAre(job + "-renew"));

  store::RenewalRecord done = RunToDone(job);
  EXPECT_THAT(Issuances(job), SizeIs(1));
  EXPECT_THAT(StoredCommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install", job + "-bind"));
}

TEST_F(RenewalServiceTest, AJobResumedAfterIssuedCompletesWithoutASecondIssuanceOrCommand) {
  const std::string job = MustStart();
  AnswerRenew(job);
  Answer(job + "-trust", Succeeded());
  store::RenewalRecord sent = WaitForState(job, RenewalState::kInstallSent);
  const std::string serial = sent.serial;
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_THAT(channel_->CommandIds(), ElementsAre(job + "-install"));  // re-sent on attach

  // The first controller stopped after it created the trust and install commands but before it
  // stored install_sent: the job is issued in the store.
  store::RenewalRecord issued = Stored(job);
  issued.state = RenewalState::kIssued;
  issued.steps.pop_back();
  ASSERT_EQ(issued.steps.back().state, RenewalState::kIssued);
  issued.install_command_id.clear();
  ASSERT_TRUE(store().UpdateRenewal(issued, RenewalState::kInstallSent).ok());

  renewals().Tick();
  WaitForState(job, RenewalState::kInstallSent);
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  store::RenewalRecord done = WaitForState(job, RenewalState::kDone);

  EXPECT_EQ(done.serial, serial);
  EXPECT_THAT(Issuances(job), SizeIs(1));
  EXPECT_THAT(StoredCommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install", job + "-bind"));
  // The same commands: the install was not sent again by the resumed step, only on attach.
  EXPECT_THAT(channel_->CommandIds(), ElementsAre(job + "-install", job + "-bind"));
}

TEST_F(RenewalServiceTest, AJobResumedAfterSubmittedGetsTheRecordedCertificateNotASecondOne) {
  const std::string job = MustStart();
  AnswerRenew(job);
  Answer(job + "-trust", Succeeded());
  store::RenewalRecord sent = WaitForState(job, RenewalState::kInstallSent);
  ASSERT_THAT(Issuances(job), SizeIs(1));
  ASSERT_NO_FATAL_FAILURE(Restart());

  // The first controller stopped after the issuer recorded the certificate but before the job
  // stored issued: the job is submitted in the store, with the CSR and without a chain.
  store::RenewalRecord submitted = Stored(job);
  while (!submitted.steps.empty() && submitted.steps.back().state != RenewalState::kSubmitted) {
    submitted.steps.pop_back();
  }
  ASSERT_FALSE(submitted.steps.empty());
  submitted.state = RenewalState::kSubmitted;
  submitted.chain_pem.clear();
  submitted.serial.clear();
  submitted.thumbprint.clear();
  submitted.install_command_id.clear();
  ASSERT_TRUE(store().UpdateRenewal(submitted, RenewalState::kInstallSent).ok());

  clock_.Advance(absl::Minutes(10));  // the new controller came up a while later
  renewals().Tick();
  WaitForState(job, RenewalState::kInstallSent);
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  store::RenewalRecord done = WaitForState(job, RenewalState::kDone);

  EXPECT_EQ(done.serial, sent.serial);
  EXPECT_EQ(done.thumbprint, sent.thumbprint);
  EXPECT_EQ(done.chain_pem, sent.chain_pem);
  EXPECT_THAT(Issuances(job), SizeIs(1));
  EXPECT_THAT(StoredCommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install", job + "-bind"));
}

TEST_F(RenewalServiceTest, AJobPendingApprovalResumesAfterARestartWithOneIssuance) {
  const std::string job = MustStart("manual");
  AnswerRenew(job);
  WaitForState(job, RenewalState::kPendingApproval);
  ASSERT_NO_FATAL_FAILURE(Restart());

  ASSERT_TRUE(c_->approvals->Approve(PendingRequest(), "bob").ok());
  clock_.Advance(kManualPollInterval);
  renewals().Tick();
  Answer(job + "-trust", Succeeded());
  Answer(job + "-install", Succeeded());
  Answer(job + "-bind", BindVerified(clock_.Now()));
  WaitForState(job, RenewalState::kDone);

  EXPECT_THAT(Issuances(job), SizeIs(1));
  auto requests = c_->approvals->List(std::nullopt);
  ASSERT_TRUE(requests.ok()) << requests.status();
  EXPECT_THAT(*requests, SizeIs(1));
  EXPECT_THAT(StoredCommandIds(),
              ElementsAre(job + "-renew", job + "-trust", job + "-install", job + "-bind"));
}

TEST_F(RenewalServiceTest, TickLeavesAFinishedJobAlone) {
  const std::string job = MustStart();
  store::RenewalRecord done = RunToDone(job);
  ASSERT_NO_FATAL_FAILURE(Restart());
  renewals().Tick();
  c_->executor->Shutdown();  // runs whatever the tick posted
  EXPECT_EQ(Stored(job).steps.size(), done.steps.size());
  EXPECT_THAT(channel_->CommandIds(), IsEmpty());
  EXPECT_THAT(Issuances(job), SizeIs(1));
}

}  // namespace
}  // namespace certfleet::controller::renewal
