#include "tools/sim/sim_agent.h"

#include <utility>
#include <variant>

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "common/logging/log.h"
#include "common/rpc/command_convert.h"
#include "common/rpc/grpc_status.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::sim {
namespace {

namespace model = common::model;
using certfleet::v1::AgentMessage;
using certfleet::v1::ControllerMessage;

// The longest command id echoed back in a refusal (as the agent's Session does).
constexpr size_t kMaxEchoedId = 128;
// A cached scan older than this is taken again (validity and EXPIRES_SOON move with time).
constexpr absl::Duration kMaxScanAge = absl::Minutes(10);

model::CommandOutcome Failed(const absl::Status& status) {
  model::CommandOutcome outcome;
  outcome.state = model::CommandState::kFailed;
  outcome.code = status.code();
  outcome.error = std::string(status.message());
  return outcome;
}

}  // namespace

SimAgent::SimAgent(SimAgentOptions options, const SimAgentDeps& deps, SimIdentity identity,
                   std::unique_ptr<agent::platform::MemoryHostPlatform> host)
    : options_(std::move(options)),
      deps_(deps),
      fqdn_(identity.fqdn),
      agent_id_(identity.credentials.agent_id),
      host_(std::move(host)),
      identity_(std::move(identity)),
      interval_(options_.heartbeat_interval),
      backoff_(options_.initial_backoff, options_.max_backoff, random_) {}

SimAgent::~SimAgent() = default;

void SimAgent::Prepare() {
  absl::MutexLock scan_lock(&scan_mu_);
  absl::StatusOr<agent::inventory::HostInventory> scan = ScanLocked(/*rescan=*/true);
  if (!scan.ok()) common::LogWarning(fqdn_, ": host scan failed: ", scan.status().ToString());
}

void SimAgent::Launch() {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = identity_.credentials.ca_pem;
  ssl.pem_private_key = identity_.credentials.key_pem;
  ssl.pem_cert_chain = identity_.credentials.identity_pem;
  grpc::ChannelArguments args;
  // As the agent dials (agent/rpc/controller_client.cc).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // One connection per agent: a subchannel pool of its own, and an argument no other channel
  // has (gRPC shares subchannels between channels whose arguments are equal).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("certfleet.sim.agent", options_.unique_id);
  if (!options_.server_name.empty()) args.SetSslTargetNameOverride(options_.server_name);
  channel_ = grpc::CreateCustomChannel(options_.target, grpc::SslCredentials(ssl), args);
  stub_ = certfleet::v1::AgentGateway::NewStub(channel_);
  // The channel keeps its own copy; thousands of agents need not keep theirs.
  identity_ = SimIdentity{};
  deps_.stats.ConnectLaunched();
  Connect();
}

void SimAgent::Connect() {
  std::shared_ptr<AgentStream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    ++epoch_;
    welcomed_ = false;
    stream = std::make_shared<AgentStream>(*this);
    stream_ = stream;
  }
  AgentMessage hello;
  hello.mutable_hello()->set_agent_id(agent_id_);
  hello.mutable_hello()->set_version(options_.version);
  hello.mutable_hello()->set_platform(host_->Name());
  hello.mutable_hello()->add_capabilities("inventory");
  hello.mutable_hello()->mutable_facts()->set_fqdn(fqdn_);
  hello.mutable_hello()->mutable_facts()->set_platform(host_->Name());
  hello.mutable_hello()->mutable_facts()->set_agent_version(options_.version);
  stream->Start(*stub_, std::move(hello));
  // The full inventory follows the Hello at once, as the agent's Session sends it.
  deps_.executor.Post([this] { ScanAndSend(/*full=*/true, /*rescan=*/false); });
}

void SimAgent::Stop() {
  std::shared_ptr<AgentStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stream = stream_;
  }
  if (stream) stream->Cancel();
}

bool SimAgent::Finished() const {
  absl::MutexLock lock(&mu_);
  return stopping_ && stream_ == nullptr && !draining_;
}

void SimAgent::Send(const AgentMessage& message) {
  std::shared_ptr<AgentStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  if (stream) stream->Send(message);
}

void SimAgent::SendOutcome(const std::string& id, const model::CommandOutcome& outcome) {
  AgentMessage m;
  common::rpc::ToProto(id, outcome, m.mutable_command_update());
  Send(m);
}

void SimAgent::OnMessage(AgentStream& /*stream*/, const ControllerMessage& message) {
  switch (message.payload_case()) {
    case ControllerMessage::kWelcome:
      OnWelcome(message.welcome());
      return;
    case ControllerMessage::kInventoryAck:
      if (message.inventory_ack().resync()) {
        deps_.executor.Post([this] { ScanAndSend(/*full=*/true, /*rescan=*/false); });
      }
      return;
    case ControllerMessage::kCommand:
      OnCommand(message.command());
      return;
    case ControllerMessage::kCancel: {
      absl::MutexLock lock(&mu_);
      // Applies when the command runs (a command already running or done is unaffected).
      cancelled_.insert(message.cancel().command_id().substr(0, kMaxEchoedId));
      return;
    }
    case ControllerMessage::kCommandAck: {
      std::string id = message.command_ack().command_id();
      {
        absl::MutexLock lock(&mu_);
        if (unacked_.erase(id) == 0) return;
      }
      PostWork([this, id = std::move(id)] { MarkReported(id); });
      return;
    }
    case ControllerMessage::PAYLOAD_NOT_SET:
      // The controller's Welcome when it has no scan interval to send arrives without the
      // welcome field set (controller/rpc/agent_gateway.cc builds it only with an interval):
      // the first message of a stream is its Welcome either way.
      OnWelcome(certfleet::v1::Welcome());
      return;
  }
}

void SimAgent::OnWelcome(const certfleet::v1::Welcome& welcome) {
  const absl::Time now = deps_.clock.Now();
  bool first = false;
  bool resend = false;
  uint64_t epoch = 0;
  absl::Duration first_beat;
  {
    absl::MutexLock lock(&mu_);
    if (welcomed_) return;
    welcomed_ = true;
    first = !ever_welcomed_;
    ever_welcomed_ = true;
    resend = !unacked_.empty();
    epoch = epoch_;
    if (welcome.has_scan_interval()) {
      absl::Duration d = absl::Milliseconds(
          google::protobuf::util::TimeUtil::DurationToMilliseconds(welcome.scan_interval()));
      if (d > absl::ZeroDuration()) interval_ = d;
    }
    // Spread the fleet's heartbeats over the interval.
    first_beat = interval_ * absl::Uniform(random_, 0.0, 1.0);
  }
  deps_.stats.Connected(now, first);
  // Outcomes finished while disconnected (or not acknowledged) go out again.
  if (resend) PostWork([this] { ResendUnreported(); });
  deps_.timers.Schedule(now + first_beat, [this, epoch] { Heartbeat(epoch); });
}

void SimAgent::OnCommand(const certfleet::v1::Command& proto) {
  absl::StatusOr<model::Command> command = common::rpc::FromProto(proto);
  if (!command.ok()) {
    common::LogWarning(fqdn_, ": refusing a malformed command: ", command.status().ToString());
    if (!proto.id().empty() && proto.id().size() <= kMaxEchoedId) {
      SendOutcome(proto.id(), Failed(command.status()));
    }
    return;
  }
  const absl::Time now = deps_.clock.Now();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    // A re-delivery while the original is queued or running: its outcome is reported once.
    if (!in_flight_.emplace(command->id, now).second) return;
  }
  deps_.stats.CommandReceived(model::KindOf(command->payload));
  PostWork([this, c = std::move(*command)] { Execute(c); });
}

void SimAgent::OnDone(AgentStream& stream, const grpc::Status& status) {
  bool was_welcomed = false;
  bool stopping = false;
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    if (stream_.get() != &stream) return;
    stream_.reset();
    ++epoch_;
    was_welcomed = welcomed_;
    welcomed_ = false;
    stopping = stopping_;
    if (was_welcomed) backoff_.Reset();
    wait = backoff_.Next();
  }
  const absl::StatusCode code = common::rpc::FromGrpcStatus(status).code();
  if (was_welcomed) {
    deps_.stats.Disconnected(code, /*counted=*/!stopping);
  } else if (!stopping) {
    deps_.stats.ConnectFailed(code);
  }
  if (stopping) return;
  common::LogDebug(fqdn_, ": stream ended (", status.error_code(), " ", status.error_message(),
                   "); reconnecting in ", absl::FormatDuration(wait));
  deps_.stats.Reconnect();
  deps_.timers.Schedule(deps_.clock.Now() + wait,
                        [this] { deps_.executor.Post([this] { Connect(); }); });
}

void SimAgent::Heartbeat(uint64_t epoch) {
  std::shared_ptr<AgentStream> stream;
  absl::Duration interval;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || epoch != epoch_ || !welcomed_ || !stream_) return;
    stream = stream_;
    interval = interval_;
  }
  AgentMessage beat;
  beat.mutable_heartbeat();
  if (!stream->Send(std::move(beat))) return;
  deps_.timers.Schedule(deps_.clock.Now() + interval, [this, epoch] { Heartbeat(epoch); });
}

absl::StatusOr<agent::inventory::HostInventory> SimAgent::ScanLocked(bool rescan) {
  const absl::Time now = deps_.clock.Now();
  if (!rescan && last_scan_ && now - last_scan_at_ < kMaxScanAge) return *last_scan_;
  last_scan_.reset();
  agent::inventory::ScanOptions options;
  options.now = now;
  options.warn_within = options_.warn_within;
  options.events_since = now - absl::Hours(24);
  absl::StatusOr<agent::inventory::HostInventory> scan =
      agent::inventory::ScanHost(*host_, options);
  if (scan.ok()) {
    last_scan_ = *scan;
    last_scan_at_ = now;
  }
  return scan;
}

void SimAgent::ScanAndSend(bool full, bool rescan) {
  absl::MutexLock scan_lock(&scan_mu_);
  std::shared_ptr<AgentStream> stream;
  uint64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !stream_) {
      if (rescan) last_scan_.reset();
      return;
    }
    stream = stream_;
    epoch = epoch_;
  }
  if (!tracker_ || tracker_epoch_ != epoch) {
    tracker_ = std::make_unique<agent::rpc::InventoryTracker>();
    tracker_epoch_ = epoch;
  }
  absl::StatusOr<agent::inventory::HostInventory> scan = ScanLocked(rescan);
  if (!scan.ok()) {
    common::LogWarning(fqdn_, ": host scan failed: ", scan.status().ToString());
    return;
  }
  std::optional<certfleet::v1::Inventory> inventory = tracker_->Next(*scan, full);
  if (!inventory) return;
  AgentMessage m;
  *m.mutable_inventory() = std::move(*inventory);
  stream->Send(std::move(m));
}

void SimAgent::PostWork(std::function<void()> work) {
  {
    absl::MutexLock lock(&mu_);
    work_.push_back(std::move(work));
    if (draining_) return;
    draining_ = true;
  }
  if (!deps_.executor.Post([this] { DrainOne(); })) {
    absl::MutexLock lock(&mu_);
    work_.clear();
    draining_ = false;
  }
}

void SimAgent::DrainOne() {
  std::function<void()> work;
  {
    absl::MutexLock lock(&mu_);
    if (!work_.empty()) {
      work = std::move(work_.front());
      work_.pop_front();
    }
  }
  if (work) work();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!work_.empty()) break;
      if (journal_ == nullptr || !unacked_.empty() || !in_flight_.empty()) {
        draining_ = false;
        return;
      }
    }
    // Nothing queued, running or unacknowledged: close the journal. This task still owns the
    // strand (draining_ is set), so no other strand task uses the journal meanwhile.
    runner_.reset();
    journal_.reset();
  }
  // One task at a time per agent, so that a busy agent does not hold an executor thread.
  if (!deps_.executor.Post([this] { DrainOne(); })) {
    absl::MutexLock lock(&mu_);
    work_.clear();
    draining_ = false;
  }
}

absl::Status SimAgent::EnsureJournal() {
  if (journal_) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<agent::journal::Journal>> journal =
      agent::journal::Journal::Open(options_.journal_path);
  if (!journal.ok()) return journal.status();
  journal_ = std::move(*journal);
  runner_ = std::make_unique<agent::commands::CommandRunner>(
      agent::commands::CommandRunner::Options{.warn_within = options_.warn_within},
      agent::commands::CommandRunner::Deps{*host_, *journal_, deps_.clock, deps_.keys});
  return absl::OkStatus();
}

void SimAgent::Execute(const model::Command& command) {
  const std::string& id = command.id;
  const model::CommandKind kind = model::KindOf(command.payload);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      in_flight_.erase(id);
      return;
    }
  }
  model::CommandOutcome outcome;
  if (absl::Status s = EnsureJournal(); !s.ok()) {
    common::LogError(fqdn_, ": opening the command journal: ", s.ToString());
    outcome = Failed(common::Annotate(s, "opening the command journal"));
  } else {
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      cancelled = cancelled_.erase(id) > 0;
    }
    if (cancelled) runner_->Cancel(id);
    outcome = runner_->Execute(command, [this, &id] {
      AgentMessage m;
      m.mutable_command_update()->set_command_id(id);
      m.mutable_command_update()->set_phase(certfleet::v1::CommandUpdate::RUNNING);
      Send(m);
    });
  }
  absl::Duration latency;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(id);
    latency = it == in_flight_.end() ? absl::ZeroDuration() : deps_.clock.Now() - it->second;
    if (it != in_flight_.end()) in_flight_.erase(it);
    unacked_.insert(id);
    if (outcome.state == model::CommandState::kSucceeded) NoteSuccess(command);
  }
  SendOutcome(id, outcome);
  deps_.stats.CommandFinished(kind, outcome.state, latency);
  // The host may have changed (or a scan was asked for): report it now, as the agent does.
  ScanAndSend(/*full=*/false, /*rescan=*/true);
}

void SimAgent::NoteSuccess(const model::Command& command) {
  switch (model::KindOf(command.payload)) {
    case model::CommandKind::kRenew:
      renew_ok_ = true;
      install_ok_ = false;
      return;
    case model::CommandKind::kInstall:
      if (!renew_ok_) return;
      install_ok_ = true;
      if (!std::get<model::InstallPayload>(command.payload).bind) return;
      break;
    case model::CommandKind::kRebind:
      if (!install_ok_) return;
      break;
    default:
      return;
  }
  renew_ok_ = false;
  install_ok_ = false;
  if (renewed_) return;
  renewed_ = true;
  deps_.stats.RenewalCompleted();
}

void SimAgent::ResendUnreported() {
  if (absl::Status s = EnsureJournal(); !s.ok()) {
    common::LogError(fqdn_, ": opening the command journal: ", s.ToString());
    return;
  }
  absl::StatusOr<std::vector<std::pair<std::string, model::CommandOutcome>>> unreported =
      runner_->Unreported();
  if (!unreported.ok()) {
    common::LogWarning(fqdn_, ": journal: ", unreported.status().ToString());
    return;
  }
  for (const auto& [id, outcome] : *unreported) {
    {
      absl::MutexLock lock(&mu_);
      unacked_.insert(id);
    }
    SendOutcome(id, outcome);
  }
}

void SimAgent::MarkReported(const std::string& id) {
  if (!journal_) return;
  if (absl::Status s = runner_->MarkReported(id); !s.ok()) {
    common::LogWarning(fqdn_, ": journal: ", s.ToString());
  }
}

}  // namespace certfleet::sim
