#include "agent/agent.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/client/backoff.h"
#include "agent/client/command_worker.h"
#include "agent/commands/command_runner.h"
#include "agent/inventory/inventory.h"
#include "agent/journal/journal.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"

namespace certfleet::agent {
namespace {

// The stream's view of the agent's command machinery.
class WorkerHandler final : public rpc::CommandHandler {
 public:
  WorkerHandler(client::CommandWorker& worker, commands::CommandRunner& runner)
      : worker_(worker), runner_(runner) {}
  void Submit(common::model::Command command) override { worker_.Submit(std::move(command)); }
  void Cancel(absl::string_view id) override { worker_.Cancel(id); }
  void Acknowledged(absl::string_view id) override {
    if (absl::Status s = runner_.MarkReported(id); !s.ok()) {
      common::LogWarning("journal: ", s.ToString());
    }
  }
  std::vector<std::pair<std::string, common::model::CommandOutcome>> Unreported() override {
    auto u = runner_.Unreported();
    if (!u.ok()) {
      common::LogWarning("journal: ", u.status().ToString());
      return {};
    }
    return std::move(*u);
  }
  void SetReporter(Reporter reporter) override { worker_.SetReporter(std::move(reporter)); }

 private:
  client::CommandWorker& worker_;
  commands::CommandRunner& runner_;
};

bool Retryable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnknown;
}

}  // namespace

Agent::Agent(AgentOptions options, AgentDeps deps) : options_(std::move(options)), deps_(deps) {}

void Agent::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  if (session_) session_->Stop();
}

bool Agent::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopped), d);
  return !stop_;
}

absl::StatusOr<rpc::Credentials> Agent::LoadOrEnroll() {
  const std::string dir = options_.state_dir;
  const std::string key_path = dir + "/identity.key";
  if (common::FileExists(key_path)) {
    rpc::Credentials c;
    auto read = [&](const std::string& name, std::string* out) -> absl::Status {
      auto data = common::ReadFileToString(dir + "/" + name);
      if (!data.ok()) {
        return absl::DataLossError(
            absl::StrCat("agent identity in ", dir, " is incomplete: ", data.status().message()));
      }
      *out = std::move(*data);
      return absl::OkStatus();
    };
    CF_RETURN_IF_ERROR(read("identity.key", &c.key_pem));
    CF_RETURN_IF_ERROR(read("identity.pem", &c.identity_pem));
    CF_RETURN_IF_ERROR(read("ca.pem", &c.ca_pem));
    CF_RETURN_IF_ERROR(read("agent_id", &c.agent_id));
    c.agent_id = std::string(absl::StripAsciiWhitespace(c.agent_id));
    return c;
  }
  if (options_.token.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("not enrolled (no identity in ", dir, "); pass --token with a join token"));
  }
  absl::BitGen gen;
  client::Backoff backoff(options_.initial_backoff, options_.max_backoff, gen);
  while (true) {
    rpc::EnrollParams params;
    params.controller = options_.controller;
    params.token = options_.token;
    params.fqdn = deps_.host.Fqdn();
    params.platform = deps_.host.Name();
    params.version = options_.version;
    auto creds = rpc::Enroll(params);
    if (creds.ok()) {
      CF_RETURN_IF_ERROR(common::MakeDirectories(dir, 0700));
      CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/ca.pem", creds->ca_pem, 0644));
      CF_RETURN_IF_ERROR(
          common::WriteFileAtomically(dir + "/identity.pem", creds->identity_pem, 0644));
      CF_RETURN_IF_ERROR(
          common::WriteFileAtomically(dir + "/agent_id", creds->agent_id + "\n", 0644));
      // The key last: its presence marks a complete enrollment.
      CF_RETURN_IF_ERROR(common::WriteFileAtomically(key_path, creds->key_pem, 0600));
      common::LogInfo("enrolled as agent ", creds->agent_id);
      return creds;
    }
    if (!Retryable(creds.status())) return creds.status();
    absl::Duration wait = backoff.Next();
    common::LogWarning(creds.status().message(), "; retrying enrollment in ",
                       absl::FormatDuration(wait));
    if (!SleepUnlessStopped(wait)) return absl::CancelledError("stopped before enrollment");
  }
}

absl::Status Agent::Run() {
  CF_RETURN_IF_ERROR(common::MakeDirectories(options_.state_dir, 0700), "state directory");
  auto creds = LoadOrEnroll();
  if (!creds.ok()) {
    if (creds.status().code() == absl::StatusCode::kCancelled) return absl::OkStatus();
    return creds.status();
  }
  CF_ASSIGN_OR_RETURN(std::unique_ptr<journal::Journal> journal,
                      journal::Journal::Open(options_.state_dir + "/journal.db"),
                      "command journal");
  commands::CommandRunner::Options runner_options;
  runner_options.warn_within = options_.warn_within;
  commands::CommandRunner runner(runner_options,
                                 commands::CommandRunner::Deps{deps_.host, *journal, deps_.clock});
  // A rebind cut short by a crash is finished or rolled back before anything else happens.
  if (absl::Status s = runner.Recover(); !s.ok()) {
    common::LogError("recovering interrupted commands: ", s.ToString());
  }
  client::CommandWorker worker(runner);
  WorkerHandler handler(worker, runner);

  rpc::SessionOptions so;
  so.controller = options_.controller;
  so.platform = deps_.host.Name();
  so.version = options_.version;
  so.fqdn = deps_.host.Fqdn();
  if (options_.scan_interval) {
    so.scan_interval = *options_.scan_interval;
    so.scan_interval_fixed = true;
  }
  auto scan = [this]() {
    inventory::ScanOptions opts;
    opts.now = deps_.clock.Now();
    opts.warn_within = options_.warn_within;
    opts.events_since = opts.now - absl::Hours(24);
    return inventory::ScanHost(deps_.host, opts);
  };
  rpc::Session session(*creds, so, scan, &handler);
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return absl::OkStatus();
    session_ = &session;
  }
  absl::BitGen gen;
  client::Backoff backoff(options_.initial_backoff, options_.max_backoff, gen);
  while (true) {
    bool welcomed = false;
    absl::Status s = session.Run(&welcomed);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    if (welcomed) backoff.Reset();
    absl::Duration wait = backoff.Next();
    common::LogWarning("stream to ", options_.controller, " ended: ", s.ToString(),
                       "; reconnecting in ", absl::FormatDuration(wait));
    if (!SleepUnlessStopped(wait)) break;
  }
  {
    absl::MutexLock lock(&mu_);
    session_ = nullptr;
  }
  worker.Stop();
  return absl::OkStatus();
}

}  // namespace certfleet::agent
