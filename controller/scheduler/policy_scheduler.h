#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "controller/audit/audit_log.h"
#include "controller/campaigns/campaign_service.h"
#include "controller/commands/command_service.h"
#include "controller/config/config.h"
#include "controller/fleet/fleet.h"
#include "controller/notify/notifier.h"
#include "controller/policy/rate_budget.h"
#include "controller/renewal/renewal_service.h"
#include "controller/store/store.h"

namespace certfleet::controller::scheduler {

struct SchedulerDeps {
  store::Store& store;
  renewal::RenewalService& renewals;
  commands::CommandService& commands;
  fleet::Fleet& fleet;
  common::Clock& clock;
  // Policies, windows, retry, expiry thresholds. Must outlive the scheduler.
  const config::ControllerConfig& config;
  policy::RateBudgets& budgets;
  campaigns::CampaignService* campaigns = nullptr;  // optional: their hosts are left alone
  audit::AuditLog* audit = nullptr;                 // optional
  notify::Notifier* notifier = nullptr;             // optional
};

// What one pass decided (for logs, metrics and tests).
struct PassResult {
  int agents = 0;
  int due = 0;              // hosts whose certificate reached its renewal time
  int started = 0;          // renewals started
  int waiting_window = 0;   // due, outside a hard window (or a soft one with time to spare)
  int waiting_budget = 0;   // due, the issuer's rate budget is spent
  int waiting_backoff = 0;  // due, retrying after a failure later
  int remediations = 0;     // drift fixed by a rebind
  int notifications = 0;    // expiry and drift notifications sent
};

// The automatic side of issue 5: renews certificates by policy and fixes drift, without an
// operator. Each pass looks at every agent's bound certificate:
// - expiry notifications at the configured thresholds (once per certificate and threshold,
//   remembered in the store), drift notifications (once per agent, code and binding);
// - the first enabled policy matching the agent's labels and FQDN decides when its certificate
//   is due (policy::RenewalDueAt: a fraction of the lifetime or a lead time before expiry,
//   whichever comes first, with a deterministic per-host jitter);
// - due hosts are started in order of expiry (closest first), each only when it is connected,
//   not in a campaign, not retrying after a failure (capped exponential backoff), inside its
//   window (hard: never outside; soft: outside only when the certificate would expire before
//   the window opens again, with a day to spare), and the issuer's rate budget has a token;
// - drift "renewed, not active" and "binding points at nothing" is fixed with a rebind to the
//   host's best compliant certificate when the policy says drift: rebind (else only reported).
// Every decision to act is audited (actor "controller"). Per-agent state (failures, next
// attempt, the job in flight) is persisted, and the job ids are derived from it, so a restart
// never starts a second job for the same attempt.
//
// Thread-compatible: call Pass from one thread at a time (the controller's timer). Blocks on
// the store.
class PolicyScheduler {
 public:
  explicit PolicyScheduler(SchedulerDeps deps) : deps_(deps) {}

  absl::StatusOr<PassResult> Pass();

 private:
  void Audit(absl::string_view action, absl::string_view target,
             const std::map<std::string, std::string>& details);
  // Sends `event` unless `key` was already notified. Returns whether it went out.
  bool NotifyOnce(const std::string& key, notify::Event event);

  SchedulerDeps deps_;
};

}  // namespace certfleet::controller::scheduler
