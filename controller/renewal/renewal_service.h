#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/executor/executor.h"
#include "common/model/profile.h"
#include "common/time/clock.h"
#include "controller/ca/issuer.h"
#include "controller/commands/command_service.h"
#include "controller/store/store.h"

namespace certfleet::controller::renewal {

struct RenewalOptions {
  std::string default_issuer = "builtin";
  // Deadline of each command the job sends.
  absl::Duration command_timeout = absl::Hours(24);
  // The rebind's wait for event 20053.
  absl::Duration verify_timeout = absl::Seconds(60);
  // How often a pending issuer (an officer's queue, a CA's pending request) is asked again.
  absl::Duration poll_interval = absl::Seconds(5);
};

struct RenewalDeps {
  store::Store& store;
  commands::CommandService& commands;
  common::Executor& executor;
  common::Clock& clock;
  // By name. Must outlive the service.
  const std::map<std::string, ca::Issuer*>& issuers;
  const std::map<std::string, common::model::CertificateProfile>& profiles;
};

struct StartRequest {
  // Empty: a random id. Set by automatic callers (campaigns, the scheduler) with an id derived
  // from their own state: Start then returns the existing job of that id instead of creating a
  // second one, so a crash between starting the job and recording it starts it once.
  std::string id;
  std::string agent;    // id or FQDN
  std::string profile;  // empty = "scom"
  std::string issuer;   // empty = the default issuer
  bool bind = true;
  std::string created_by;
};

// The per-host renewal job (ARCHITECTURE.md, "Renewal job"): the agent makes the key and CSR,
// the controller checks the CSR against the profile and the agent's registered FQDN, an issuer
// signs, the agent installs and rebinds with verification and rollback. Every step is persisted
// before the next begins (compare-and-set on the job's state), and every step can be repeated
// after a crash without a second effect: commands have ids derived from the job, the builtin
// issuer returns what it already recorded for the job.
//
// Thread-safe. Steps run on the executor, one at a time per job.
class RenewalService {
 public:
  RenewalService(RenewalDeps deps, RenewalOptions options) : deps_(deps), options_(options) {}

  // Creates a job and starts it. NotFound for an unknown agent, profile or issuer;
  // FailedPrecondition when the agent already has an active renewal.
  absl::StatusOr<store::RenewalRecord> Start(const StartRequest& request);
  absl::StatusOr<store::RenewalRecord> Get(absl::string_view id);
  // `agent` empty = all.
  absl::StatusOr<std::vector<store::RenewalRecord>> List(absl::string_view agent,
                                                         const store::RenewalFilter& filter);

  // A command became final: advances the job that sent it, if any. Never blocks.
  void OnCommandFinal(const store::CommandRecord& command);
  // Looks at every active job (at start: resumes what a restart interrupted; then
  // periodically: polls pending issuers, retries). Blocks on the store; call from a timer.
  void Tick();
  // Advances job `id` soon (e.g. an officer approved its request), without waiting for its next
  // attempt time: a job waiting for its issuer asks it again at once. Never blocks.
  void Nudge(absl::string_view id);

  // Called on the thread that moved the job, after each state it entered was stored. Set
  // before the first Start or Tick; must not block.
  using StateListener = std::function<void(const store::RenewalRecord& record)>;
  void SetStateListener(StateListener listener) { state_listener_ = std::move(listener); }

 private:
  // Queues Advance(id) on the executor; `now`: as Nudge, regardless of the next attempt time.
  void Post(const std::string& id, bool now);
  void Advance(const std::string& id);
  // Runs one step of `r`. Returns true when the job moved and the next step may follow at once.
  bool Step(store::RenewalRecord& r);
  // Persists `r` in `state` (compare-and-set against its current state); false when another
  // thread moved the job first.
  bool Transition(store::RenewalRecord& r, common::model::RenewalState state,
                  absl::string_view note);
  bool Fail(store::RenewalRecord& r, absl::string_view reason);
  // Stores `r` again in the same state (new cookie or next attempt time).
  bool Save(store::RenewalRecord& r);
  // The outcome of command `id`, or nullopt while it is not final.
  std::optional<store::CommandRecord> FinishedCommand(absl::string_view id);
  bool HandleIssuerAnswer(store::RenewalRecord& r,
                          const absl::StatusOr<ca::IssuanceResult>& result);
  absl::StatusOr<std::string> CreateCommand(const store::RenewalRecord& r, absl::string_view suffix,
                                            common::model::CommandPayload payload);

  RenewalDeps deps_;
  RenewalOptions options_;
  StateListener state_listener_;
  absl::Mutex mu_;
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> again_ ABSL_GUARDED_BY(mu_);
  // Nudged jobs: their next Advance ignores the next attempt time.
  std::set<std::string> nudged_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::renewal
