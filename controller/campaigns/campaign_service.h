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
#include "common/model/campaign.h"
#include "common/time/clock.h"
#include "controller/audit/audit_log.h"
#include "controller/commands/command_service.h"
#include "controller/config/config.h"
#include "controller/fleet/fleet.h"
#include "controller/notify/notifier.h"
#include "controller/renewal/renewal_service.h"
#include "controller/store/store.h"

namespace certfleet::controller::campaigns {

struct CampaignDeps {
  store::Store& store;
  renewal::RenewalService& renewals;
  commands::CommandService& commands;
  fleet::Fleet& fleet;
  common::Executor& executor;
  common::Clock& clock;
  // Profile and issuer names a campaign may use; the configured maintenance windows by name.
  const std::map<std::string, common::model::CertificateProfile>& profiles;
  const std::map<std::string, ca::Issuer*>& issuers;
  const std::map<std::string, config::WindowConfig>& windows;
  audit::AuditLog* audit = nullptr;      // optional: every decision is recorded there
  notify::Notifier* notifier = nullptr;  // optional: campaign.halted, campaign.finished
};

struct CampaignOptions {
  std::string default_issuer = "builtin";
  // A host whose renewal reached `done` must, after the soak, still be bound to the renewed
  // certificate (its inventory's channel serial). Hosts report inventory on their scan
  // interval; a report older than the renewal is not held against the host.
};

struct CreateCampaignRequest {
  std::string name;
  store::CampaignSpec spec;
  std::string created_by;  // the operator (actor string)
};

// What `campaign plan` shows for one host.
struct TargetPlan {
  store::CampaignTargetRecord target;
  bool connected = false;
  std::string bound_thumbprint;  // now, from the latest inventory
  std::optional<absl::Time> bound_not_after;
  std::string change;                 // "renew via builtin (profile scom), then rebind + 20053"
  std::vector<std::string> warnings;  // "offline", "renewal r-... active", "no bound certificate"
};

struct CampaignView {
  store::CampaignRecord campaign;
  std::vector<store::CampaignTargetRecord> targets;
  std::vector<int> wave_ends;  // cumulative target counts per wave
  // counts[wave][state name]
  std::vector<std::map<std::string, int>> counts;
  int failures = 0;
  int allowed_failures = 0;
};

// Campaigns (ARCHITECTURE.md, "Campaigns"; issue 5): a selector picks hosts when the campaign
// is created (the plan is that snapshot); waves run the per-host renewal job with at most
// max_in_flight hosts at once; a wave is promoted only after its health gate: every host of it
// renewed and verified (20053), rolled back, failed or not reached, the failures within budget,
// the soak over and every renewed host still bound to its new certificate. Over budget the
// campaign halts with the reason; the operator resumes (accepting the failures so far),
// cancels, or reverts the current wave's renewed hosts to their previous certificate.
//
// Persistence: every decision is stored (compare-and-set) before it takes effect, and each
// host's renewal job has an id derived from the campaign and the agent, so a controller killed
// at any moment continues where it stood on restart: no host renewed twice, none forgotten.
//
// Thread-safe. Create/Plan/Get/List and the controls block on the store (call them from an
// executor); Tick blocks (call from a timer thread's executor task); OnRenewalState never
// blocks.
class CampaignService {
 public:
  CampaignService(CampaignDeps deps, CampaignOptions options)
      : deps_(deps), options_(std::move(options)) {}

  // Validates the spec (waves, failure budget, window, profile, issuer, max_in_flight >= 1),
  // resolves the selector against the fleet now, and stores the campaign (planned) with its
  // targets in wave order (soonest-expiring bound certificate first, then FQDN).
  // InvalidArgument naming the bad field, and for a window that is neither a configured
  // window's name nor a valid spec; NotFound for an unknown profile or issuer;
  // FailedPrecondition when no host matches the selector. Hosts that are offline, or kept busy
  // by another renewal, past `offline_deadline` after their wave started become not_reached;
  // connected hosts waiting for a window or a free slot wait as long as it takes.
  absl::StatusOr<CampaignView> Create(const CreateCampaignRequest& request);
  // The stored campaign, its targets and counts. NotFound when unknown.
  absl::StatusOr<CampaignView> Get(absl::string_view id);
  // Oldest first.
  absl::StatusOr<std::vector<store::CampaignRecord>> List();
  // The dry run: each target with what would change and what stands in the way now.
  absl::StatusOr<std::vector<TargetPlan>> Plan(absl::string_view id);

  // planned -> running. FailedPrecondition from any other state.
  absl::StatusOr<CampaignView> Start(absl::string_view id, absl::string_view actor);
  // running -> paused: no new host starts; hosts in flight finish.
  absl::StatusOr<CampaignView> Pause(absl::string_view id, absl::string_view actor);
  // paused or halted -> running; from halted the failures so far are accepted (the budget
  // counts only new ones).
  absl::StatusOr<CampaignView> Resume(absl::string_view id, absl::string_view actor);
  // Any state but completed/cancelled -> cancelled; pending hosts become cancelled, hosts in
  // flight finish their renewal.
  absl::StatusOr<CampaignView> Cancel(absl::string_view id, absl::string_view actor,
                                      absl::string_view reason);
  // Halted or paused: every host of the current wave whose renewal succeeded is rebound to the
  // certificate it had before (a rebind command, verified like any rebind). FailedPrecondition
  // when running, or when no host of the wave can be reverted.
  absl::StatusOr<CampaignView> Revert(absl::string_view id, absl::string_view actor);

  // Drives every campaign that has work: starts hosts, follows their jobs, applies gates and
  // deadlines. Blocks on the store.
  void Tick();
  // A renewal job entered `record.state`: drives its campaign soon. Never blocks.
  void OnRenewalState(const store::RenewalRecord& record);
  // Agents that belong to a campaign which may still renew them (pending or running targets of
  // a campaign that is not final): the scheduler leaves them alone.
  absl::StatusOr<std::set<std::string>> AgentsInCampaigns();

  // The renewal id of `agent_id` in campaign `campaign_id`.
  static std::string RenewalIdFor(absl::string_view campaign_id, absl::string_view agent_id);

 private:
  // Queues Drive(id) on the executor, coalescing repeated requests.
  void Post(const std::string& id);
  void RunDrive(const std::string& id);
  // One pass over campaign `id`. Returns an error only for store failures.
  absl::Status Drive(const std::string& id);
  // Moves `c` to `state` (compare-and-set on its stored state) with `reason`.
  absl::Status SetState(store::CampaignRecord& c, common::model::CampaignState state,
                        absl::string_view reason);
  absl::StatusOr<CampaignView> ViewOf(store::CampaignRecord c);
  absl::StatusOr<CampaignView> Control(
      absl::string_view id, absl::string_view actor, absl::string_view action,
      const std::function<absl::Status(store::CampaignRecord&)>& f);
  void Audit(absl::string_view actor, absl::string_view action, absl::string_view target,
             const std::map<std::string, std::string>& details);
  void Notify(absl::string_view type, const store::CampaignRecord& c, absl::string_view summary);
  // May a host start now under the campaign's window? Sets *why when not.
  bool WindowAllows(const store::CampaignRecord& c, const store::CampaignTargetRecord& t,
                    std::string* why);

  CampaignDeps deps_;
  CampaignOptions options_;
  absl::Mutex mu_;
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> again_ ABSL_GUARDED_BY(mu_);
  // Renewal id -> campaign id, for OnRenewalState (filled as hosts start or are seen running).
  std::map<std::string, std::string> renewal_campaign_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::controller::campaigns
