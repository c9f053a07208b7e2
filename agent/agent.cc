#include "agent/agent.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/client/backoff.h"
#include "agent/client/command_worker.h"
#include "agent/commands/command_runner.h"
#include "agent/inventory/inventory.h"
#include "agent/journal/journal.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"

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

rpc::Credentials ToCredentials(const client::StoredIdentity& identity) {
  rpc::Credentials c;
  c.agent_id = identity.agent_id;
  c.ca_pem = identity.ca_pem;
  c.identity_pem = identity.identity_pem;
  c.key_pem = identity.key_pem;
  return c;
}

// What the operator must do about an expired identity.
absl::Status ExpiredError(const client::StoredIdentity& identity, const std::string& dir) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the identity of agent ", identity.agent_id, " (", dir, ") expired at ",
      common::FormatRfc3339(identity.not_after),
      ": the agent was offline, or could not renew it, past its renewal time. Create a "
      "re-enrollment token with `certfleetctl tokens create --agent ",
      identity.agent_id, "` and start the agent once with --token TOKEN (or --token-file FILE)"));
}

// The agent's periodic work, on its own loop (the session's thread between scans, and before each
// reconnect): renews the identity when due and forgets old journal entries about once a day.
// Not thread-safe: used from Agent::Run's thread only.
class Housekeeping final : public rpc::SessionTask {
 public:
  Housekeeping(const AgentOptions& options, const AgentDeps& deps, journal::Journal& journal,
               client::StoredIdentity identity)
      : options_(options),
        deps_(deps),
        journal_(journal),
        identity_(std::move(identity)),
        credentials_(ToCredentials(identity_)),
        renewal_(options.renewal, deps.random) {
    renewal_.Reset(identity_.not_before, identity_.not_after);
    PruneJournal(deps_.clock.Now());
    common::LogInfo("agent identity valid until ", common::FormatRfc3339(identity_.not_after),
                    "; renewal due at ", common::FormatRfc3339(renewal_.due_at()));
  }

  absl::Duration TimeUntilDue() override {
    return std::min({renewal_.due_at(), renewal_.not_after(), next_prune_}) - deps_.clock.Now();
  }

  // True when the identity was renewed (reconnect with credentials()) or has expired (stop).
  bool RunDue() override {
    const absl::Time now = deps_.clock.Now();
    if (renewal_.Expired(now)) return true;
    if (now >= next_prune_) PruneJournal(now);
    if (renewal_.Due(now)) return Renew(now);
    return false;
  }

  bool Expired() const { return renewal_.Expired(deps_.clock.Now()); }
  const client::StoredIdentity& identity() const { return identity_; }
  const rpc::Credentials& credentials() const { return credentials_; }
  // Counts renewals: a session made before the last one uses an old identity.
  int generation() const { return generation_; }

 private:
  bool Renew(absl::Time now) {
    rpc::RenewParams params;
    params.controller = options_.controller;
    params.fqdn = deps_.host.Fqdn();
    absl::Status status;
    auto renewed = rpc::RenewIdentity(credentials_, params);
    if (renewed.ok()) {
      auto validity = client::IdentityValidity(renewed->identity_pem);
      status = validity.status();
      if (status.ok()) {
        status =
            client::ReplaceIdentity(options_.state_dir, renewed->identity_pem, renewed->key_pem);
      }
      if (status.ok()) {
        identity_.identity_pem = renewed->identity_pem;
        identity_.key_pem = renewed->key_pem;
        identity_.not_before = validity->first;
        identity_.not_after = validity->second;
        credentials_ = *std::move(renewed);
        renewal_.Reset(identity_.not_before, identity_.not_after);
        ++generation_;
        common::LogInfo("renewed the agent identity; valid until ",
                        common::FormatRfc3339(identity_.not_after), ", next renewal at ",
                        common::FormatRfc3339(renewal_.due_at()));
        return true;
      }
      status = common::Annotate(status, "storing the renewed identity");
    } else {
      status = renewed.status();
    }
    const absl::Time next = renewal_.Failed(now);
    common::LogWarning("renewing the agent identity failed (attempt ", renewal_.failures(),
                       "): ", status.ToString(), "; retrying at ", common::FormatRfc3339(next),
                       "; the identity expires at ", common::FormatRfc3339(identity_.not_after));
    return false;
  }

  void PruneJournal(absl::Time now) {
    next_prune_ = now + options_.journal_prune_interval;
    auto forgotten = journal_.ForgetReportedBefore(now - options_.journal_retention);
    if (!forgotten.ok()) {
      common::LogWarning("journal: pruning: ", forgotten.status().ToString());
    } else if (*forgotten > 0) {
      common::LogInfo("journal: forgot ", *forgotten, " commands reported before ",
                      common::FormatRfc3339(now - options_.journal_retention));
    }
  }

  const AgentOptions& options_;
  const AgentDeps& deps_;
  journal::Journal& journal_;
  client::StoredIdentity identity_;
  rpc::Credentials credentials_;
  client::IdentityRenewal renewal_;
  absl::Time next_prune_ = absl::InfinitePast();
  int generation_ = 0;
};

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

absl::StatusOr<rpc::Credentials> Agent::EnrollWithToken(const std::string& agent_id) {
  client::Backoff backoff(options_.initial_backoff, options_.max_backoff, deps_.random);
  while (true) {
    rpc::EnrollParams params;
    params.controller = options_.controller;
    params.token = options_.token;
    params.fqdn = deps_.host.Fqdn();
    params.platform = deps_.host.Name();
    params.version = options_.version;
    params.agent_id = agent_id;
    auto creds = rpc::Enroll(params);
    if (creds.ok() || !Retryable(creds.status())) return creds;
    absl::Duration wait = backoff.Next();
    common::LogWarning(creds.status().message(), "; retrying ",
                       agent_id.empty() ? "enrollment" : "re-enrollment", " in ",
                       absl::FormatDuration(wait));
    if (!SleepUnlessStopped(wait)) return absl::CancelledError("stopped before enrollment");
  }
}

absl::StatusOr<client::StoredIdentity> Agent::LoadOrEnroll() {
  const std::string& dir = options_.state_dir;
  absl::StatusOr<client::StoredIdentity> stored = client::LoadIdentity(dir);
  if (stored.ok()) {
    if (deps_.clock.Now() < stored->not_after) {
      if (!options_.token.empty()) {
        common::LogInfo("already enrolled as agent ", stored->agent_id,
                        " with a valid identity; the token is not used");
      }
      return stored;
    }
    if (options_.token.empty()) return ExpiredError(*stored, dir);
    common::LogInfo("the identity of agent ", stored->agent_id, " expired at ",
                    common::FormatRfc3339(stored->not_after), "; re-enrolling with the token");
    CF_ASSIGN_OR_RETURN(rpc::Credentials creds, EnrollWithToken(stored->agent_id),
                        "re-enrolling agent ", stored->agent_id);
    // The root the re-enrollment token pinned is the one to trust from now on.
    CF_RETURN_IF_ERROR(common::WriteFileAtomically(dir + "/ca.pem", creds.ca_pem, 0644),
                       "storing the re-enrolled identity");
    CF_RETURN_IF_ERROR(client::ReplaceIdentity(dir, creds.identity_pem, creds.key_pem),
                       "storing the re-enrolled identity");
    CF_ASSIGN_OR_RETURN(client::StoredIdentity identity, client::LoadIdentity(dir));
    common::LogInfo("re-enrolled as agent ", identity.agent_id, "; identity valid until ",
                    common::FormatRfc3339(identity.not_after));
    return identity;
  }
  if (!absl::IsNotFound(stored.status())) return stored.status();
  if (options_.token.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("not enrolled (no identity in ", dir, "); pass --token with a join token"));
  }
  CF_ASSIGN_OR_RETURN(rpc::Credentials creds, EnrollWithToken(""));
  client::StoredIdentity identity;
  identity.agent_id = creds.agent_id;
  identity.ca_pem = creds.ca_pem;
  identity.identity_pem = creds.identity_pem;
  identity.key_pem = creds.key_pem;
  CF_RETURN_IF_ERROR(client::WriteIdentity(dir, identity));
  CF_ASSIGN_OR_RETURN(identity, client::LoadIdentity(dir));
  common::LogInfo("enrolled as agent ", identity.agent_id);
  return identity;
}

absl::Status Agent::Run() {
  CF_RETURN_IF_ERROR(common::MakeDirectories(options_.state_dir, 0700), "state directory");
  auto identity = LoadOrEnroll();
  if (!identity.ok()) {
    if (identity.status().code() == absl::StatusCode::kCancelled) return absl::OkStatus();
    return identity.status();
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
  // Prunes the journal now, then about once a day.
  Housekeeping housekeeping(options_, deps_, *journal, *std::move(identity));

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
  client::Backoff backoff(options_.initial_backoff, options_.max_backoff, deps_.random);
  std::unique_ptr<rpc::Session> session;
  int session_generation = -1;
  absl::Status result;
  while (true) {
    if (housekeeping.TimeUntilDue() <= absl::ZeroDuration()) housekeeping.RunDue();
    if (housekeeping.Expired()) {
      result = ExpiredError(housekeeping.identity(), options_.state_dir);
      break;
    }
    if (session == nullptr || session_generation != housekeeping.generation()) {
      {
        absl::MutexLock lock(&mu_);
        session_ = nullptr;
      }
      session = std::make_unique<rpc::Session>(housekeeping.credentials(), so, scan, &handler,
                                               &housekeeping);
      session_generation = housekeeping.generation();
    }
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      session_ = session.get();
    }
    bool welcomed = false;
    absl::Status s = session->Run(&welcomed);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    if (session_generation != housekeeping.generation()) {
      // Renewed: reconnect at once with the new identity.
      common::LogInfo("reconnecting with the renewed identity");
      backoff.Reset();
      continue;
    }
    if (housekeeping.Expired()) continue;  // reported at the top of the loop
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
  session.reset();
  worker.Stop();
  return result;
}

}  // namespace certfleet::agent
