#include "controller/scheduler/policy_scheduler.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging/log.h"
#include "common/model/renewal.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "controller/policy/maintenance_window.h"
#include "controller/policy/renewal_timing.h"

namespace certfleet::controller::scheduler {
namespace {

using common::model::RenewalState;

constexpr absl::string_view kRenewedNotActive = "RENEWED_NOT_ACTIVE";
constexpr absl::string_view kBindingNotFound = "BINDING_NOT_FOUND";

bool Has(const std::vector<std::string>& codes, absl::string_view code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string Days(absl::Duration d) { return absl::StrCat(absl::ToInt64Hours(d) / 24, "d"); }

struct Candidate {
  const store::AgentRecord* agent;
  const config::PolicyConfig* policy;
  const store::CertificateRecord* bound;
  store::PolicyStateRecord state;
  absl::Time due;
};

}  // namespace

absl::StatusOr<PassResult> PolicyScheduler::Pass() {
  PassResult result;
  const absl::Time now = deps_.clock.Now();
  const config::ControllerConfig& config = deps_.config;
  CF_ASSIGN_OR_RETURN(std::vector<store::AgentRecord> agents, deps_.store.ListAgents());
  CF_ASSIGN_OR_RETURN(std::vector<store::CertificateRecord> rows,
                      deps_.store.ListCertificates(store::CertificateFilter{}));
  std::map<std::string, std::vector<const store::CertificateRecord*>> by_agent;
  for (const auto& row : rows) by_agent[row.agent_id].push_back(&row);
  std::set<std::string> in_campaigns;
  if (deps_.campaigns != nullptr) {
    CF_ASSIGN_OR_RETURN(in_campaigns, deps_.campaigns->AgentsInCampaigns());
  }
  std::map<std::string, const config::WindowConfig*> windows;
  for (const auto& w : config.windows) windows[w.name] = &w;

  std::vector<Candidate> candidates;
  for (const store::AgentRecord& agent : agents) {
    ++result.agents;
    const auto& certs = by_agent[agent.id];
    const store::CertificateRecord* bound = nullptr;
    for (const auto* c : certs) {
      if (c->bound) bound = c;
    }

    // Notifications: the smallest expiry threshold crossed, once; drift, once per binding.
    if (bound != nullptr) {
      const absl::Duration left = bound->info.not_after - now;
      const absl::Duration* crossed = nullptr;
      for (const absl::Duration& t : config.expiry_thresholds) {
        if (left <= t) crossed = &t;  // thresholds are sorted longest first
      }
      if (crossed != nullptr) {
        notify::Event e;
        e.type = "certificate.expiring";
        e.at = now;
        e.subject = agent.fqdn;
        e.summary = absl::StrCat("the SCOM certificate of ", agent.fqdn,
                                 left <= absl::ZeroDuration() ? " has expired (" : " expires ",
                                 common::FormatRfc3339(bound->info.not_after),
                                 left <= absl::ZeroDuration() ? ")" : "");
        e.fields = {{"agent_id", agent.id},
                    {"fqdn", agent.fqdn},
                    {"thumbprint", bound->info.thumbprint},
                    {"not_after", common::FormatRfc3339(bound->info.not_after)},
                    {"threshold", Days(*crossed)}};
        if (NotifyOnce(absl::StrCat("expiring/", agent.id, "/", bound->info.thumbprint, "/",
                                    Days(*crossed)),
                       std::move(e))) {
          ++result.notifications;
        }
      }
    }
    for (const std::string& code : agent.drift) {
      notify::Event e;
      e.type = "drift.detected";
      e.at = now;
      e.subject = agent.fqdn;
      e.summary = absl::StrCat(agent.fqdn, ": ", code, " (binding ",
                               agent.channel_serial.empty() ? "none" : agent.channel_serial, ")");
      e.fields = {{"agent_id", agent.id},
                  {"fqdn", agent.fqdn},
                  {"code", code},
                  {"channel_serial", agent.channel_serial}};
      if (NotifyOnce(absl::StrCat("drift/", agent.id, "/", code, "/", agent.channel_serial),
                     std::move(e))) {
        ++result.notifications;
      }
    }

    const config::PolicyConfig* policy =
        config::FirstMatchingPolicy(config, agent.labels, agent.fqdn);
    if (policy == nullptr || in_campaigns.count(agent.id)) continue;

    store::PolicyStateRecord state;
    if (auto stored = deps_.store.GetPolicyState(agent.id); stored.ok()) {
      state = *std::move(stored);
    } else if (!absl::IsNotFound(stored.status())) {
      return stored.status();
    }
    state.agent_id = agent.id;
    state.policy = policy->name;

    // The job started by an earlier pass: still running, or its outcome to account for.
    if (!state.last_renewal_id.empty()) {
      absl::StatusOr<store::RenewalRecord> job = deps_.store.GetRenewal(state.last_renewal_id);
      if (job.ok() && !common::model::IsTerminal(job->state)) continue;
      if (job.ok() && job->state == RenewalState::kDone) {
        state.failures = 0;
        state.next_attempt_at = absl::InfinitePast();
      } else {
        // Failed, rolled back, or never created (a restart between the two writes).
        if (!job.ok() && !absl::IsNotFound(job.status())) return job.status();
        if (job.ok()) {
          ++state.failures;
          state.next_attempt_at = now + policy::RetryDelay(config.retry, state.failures);
        }
        // Nothing replaced the certificate: it is due again. A job that was never created is
        // then started under the same derived id (the failure count did not change).
        state.from_thumbprint.clear();
      }
      state.last_renewal_id.clear();
      state.updated_at = now;
      CF_RETURN_IF_ERROR(deps_.store.PutPolicyState(state));
    }
    // A drift fix sent earlier: wait for it to finish.
    if (!state.remediation_command_id.empty()) {
      absl::StatusOr<store::CommandRecord> cmd =
          deps_.store.GetCommand(state.remediation_command_id);
      if (cmd.ok() && !cmd->outcome.has_value()) continue;
      state.remediation_command_id.clear();
      state.updated_at = now;
      CF_RETURN_IF_ERROR(deps_.store.PutPolicyState(state));
    }

    // Drift remediation: rebind to the best compliant certificate (latest expiry).
    if (policy->drift_rebind &&
        (Has(agent.drift, kRenewedNotActive) || Has(agent.drift, kBindingNotFound)) &&
        deps_.fleet.IsConnected(agent.id)) {
      const store::CertificateRecord* best = nullptr;
      for (const auto* c : certs) {
        if (c->store != "My" || !c->problems.empty()) continue;
        if (best == nullptr || c->info.not_after > best->info.not_after) best = c;
      }
      if (best != nullptr &&
          (bound == nullptr || best->info.thumbprint != bound->info.thumbprint)) {
        commands::CreateRequest req;
        // One attempt per (agent, certificate): a failed fix is not repeated in a loop.
        req.id = absl::StrCat("drift.", agent.id, ".", best->info.thumbprint);
        req.agent = agent.id;
        req.payload = common::model::RebindPayload{best->info.thumbprint};
        req.created_by = absl::StrCat("policy/", policy->name);
        state.remediation_command_id = req.id;
        state.updated_at = now;
        CF_RETURN_IF_ERROR(deps_.store.PutPolicyState(state));
        absl::StatusOr<store::CommandRecord> cmd = deps_.commands.Create(req);
        if (cmd.ok() && cmd->created_at >= now) {
          ++result.remediations;
          Audit("policy.drift.rebind", agent.fqdn,
                {{"policy", policy->name},
                 {"drift", absl::StrJoin(agent.drift, ",")},
                 {"thumbprint", best->info.thumbprint},
                 {"command", req.id}});
        } else if (!cmd.ok()) {
          common::LogWarning("drift fix for ", agent.fqdn, ": ", cmd.status().ToString());
        }
        continue;
      }
    }

    if (bound == nullptr) continue;
    const absl::Time due =
        policy::RenewalDueAt(bound->info.not_before, bound->info.not_after, policy->timing,
                             absl::StrCat(agent.id, "/", bound->info.thumbprint));
    if (now < due) continue;
    // The inventory has not caught up with a renewal that succeeded: not due again.
    if (bound->info.thumbprint == state.from_thumbprint) continue;
    ++result.due;
    if (now < state.next_attempt_at) {
      ++result.waiting_backoff;
      continue;
    }
    if (!deps_.fleet.IsConnected(agent.id)) continue;
    if (!policy->window.empty()) {
      auto it = windows.find(policy->window);
      if (it != windows.end() && !policy::WindowContains(it->second->window, now)) {
        const absl::Time opens = policy::NextWindowOpening(it->second->window, now);
        const bool urgent = bound->info.not_after - absl::Hours(24) < opens;
        if (it->second->hard || !urgent) {
          ++result.waiting_window;
          continue;
        }
      }
    }
    candidates.push_back(Candidate{&agent, policy, bound, state, due});
  }

  // Closest expiry first: the rate budget goes to the most urgent.
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.bound->info.not_after < b.bound->info.not_after;
  });
  for (Candidate& c : candidates) {
    const std::string issuer = c.policy->issuer.empty() ? config.default_issuer : c.policy->issuer;
    if (!deps_.budgets.TryAcquire(issuer)) {
      ++result.waiting_budget;
      continue;
    }
    // Derived from the attempt: a restart after PutPolicyState starts this same job, once.
    const std::string id = absl::StrCat(
        "pol.", c.agent->id, ".", c.bound->info.thumbprint.substr(0, 12), ".", c.state.failures);
    c.state.last_renewal_id = id;
    c.state.from_thumbprint = c.bound->info.thumbprint;
    c.state.updated_at = now;
    CF_RETURN_IF_ERROR(deps_.store.PutPolicyState(c.state));
    renewal::StartRequest req;
    req.id = id;
    req.agent = c.agent->id;
    req.profile = c.policy->profile;
    req.issuer = c.policy->issuer;
    req.created_by = absl::StrCat("policy/", c.policy->name);
    absl::StatusOr<store::RenewalRecord> job = deps_.renewals.Start(req);
    if (!job.ok()) {
      // Another job of the host (an operator's) is active: look again on a later pass.
      common::LogInfo("policy ", c.policy->name, ": renewal of ", c.agent->fqdn,
                      " not started: ", job.status().message());
      c.state.last_renewal_id.clear();
      c.state.from_thumbprint.clear();
      CF_RETURN_IF_ERROR(deps_.store.PutPolicyState(c.state));
      continue;
    }
    ++result.started;
    const absl::Time by_fraction =
        c.bound->info.not_before +
        (c.bound->info.not_after - c.bound->info.not_before) * c.policy->timing.lifetime_fraction;
    const absl::Time by_lead = c.bound->info.not_after - c.policy->timing.lead_time;
    Audit("policy.renewal.start", c.agent->fqdn,
          {{"policy", c.policy->name},
           {"renewal", id},
           {"issuer", issuer},
           {"thumbprint", c.bound->info.thumbprint},
           {"not_after", common::FormatRfc3339(c.bound->info.not_after)},
           {"due", common::FormatRfc3339(c.due)},
           {"rule", by_fraction <= by_lead ? "lifetime fraction" : "lead time"},
           {"attempt", absl::StrCat(c.state.failures + 1)}});
  }
  if (result.started + result.remediations > 0 || result.waiting_budget > 0) {
    common::LogInfo("scheduler: ", result.due, " due, ", result.started, " started, ",
                    result.waiting_budget, " waiting for the rate budget, ", result.waiting_window,
                    " for a window, ", result.waiting_backoff, " backing off, ",
                    result.remediations, " drift fixes");
  }
  return result;
}

void PolicyScheduler::Audit(absl::string_view action, absl::string_view target,
                            const std::map<std::string, std::string>& details) {
  if (deps_.audit == nullptr) return;
  if (auto s = deps_.audit->Record("controller", action, target, details); !s.ok()) {
    common::LogError("audit of ", action, " on ", target, ": ", s.status().ToString());
  }
}

bool PolicyScheduler::NotifyOnce(const std::string& key, notify::Event event) {
  if (deps_.notifier == nullptr) return false;
  absl::StatusOr<bool> first = deps_.store.RecordNotificationOnce(key, event.at);
  if (!first.ok()) {
    common::LogError("notification ", key, ": ", first.status().ToString());
    return false;
  }
  if (!*first) return false;
  deps_.notifier->Notify(event);
  return true;
}

}  // namespace certfleet::controller::scheduler
