#include "controller/campaigns/campaign_service.h"

#include <fnmatch.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/encoding.h"
#include "common/logging/log.h"
#include "common/model/renewal.h"
#include "common/scom/channel_serial.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "controller/policy/maintenance_window.h"

namespace certfleet::controller::campaigns {
namespace {

using common::model::CampaignState;
using common::model::RenewalState;
using common::model::TargetState;

// A pending host's reason when its renewal could not start (another job of the host is active).
constexpr absl::string_view kBusyPrefix = "busy: ";

std::string NewCampaignId() {
  return absl::StrCat(
      "cmp-", absl::AsciiStrToLower(common::crypto::HexUpper(common::crypto::RandomBytes(6))));
}

bool GlobMatches(const std::string& glob, const std::string& fqdn) {
  return glob.empty() || fnmatch(glob.c_str(), fqdn.c_str(), FNM_CASEFOLD) == 0;
}

bool LabelsMatch(const std::map<std::string, std::string>& want,
                 const std::map<std::string, std::string>& have) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

// The certificate the host's SCOM binding points at, from its inventory rows.
const store::CertificateRecord* BoundOf(const std::vector<store::CertificateRecord>& rows) {
  for (const auto& row : rows) {
    if (row.bound) return &row;
  }
  return nullptr;
}

// The renewal job of target `t` (its renewal_id set), as the campaign asks for it.
renewal::StartRequest StartRequestFor(const store::CampaignRecord& c,
                                      const store::CampaignTargetRecord& t) {
  renewal::StartRequest req;
  req.id = t.renewal_id;
  req.agent = t.agent_id;
  req.profile = c.spec.profile;
  req.issuer = c.spec.issuer;
  req.bind = c.spec.bind;
  req.created_by = absl::StrCat("campaign/", c.id);
  return req;
}

}  // namespace

std::string CampaignService::RenewalIdFor(absl::string_view campaign_id,
                                          absl::string_view agent_id) {
  return absl::StrCat(campaign_id, ".", agent_id);
}

// --- Creation and views ---

absl::StatusOr<CampaignView> CampaignService::Create(const CreateCampaignRequest& request) {
  const store::CampaignSpec& spec = request.spec;
  if (request.name.empty()) return absl::InvalidArgumentError("campaign name is empty");
  CF_ASSIGN_OR_RETURN(auto steps, common::model::ParseWaves(spec.waves));
  CF_RETURN_IF_ERROR(common::model::ParseFailureBudget(spec.max_failures).status());
  if (spec.max_in_flight < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max in flight must be at least 1, not ", spec.max_in_flight));
  }
  if (spec.soak < absl::ZeroDuration() || spec.offline_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("soak must not be negative, offline deadline must be > 0");
  }
  const std::string profile = spec.profile.empty() ? "scom" : spec.profile;
  if (!deps_.profiles.count(profile)) {
    return absl::NotFoundError(absl::StrCat("no profile '", profile, "'"));
  }
  const std::string issuer = spec.issuer.empty() ? options_.default_issuer : spec.issuer;
  if (!deps_.issuers.count(issuer)) {
    return absl::NotFoundError(absl::StrCat("no issuer '", issuer, "'"));
  }
  if (!spec.window.empty() && !deps_.windows.count(spec.window)) {
    CF_RETURN_IF_ERROR(policy::ParseMaintenanceWindow(spec.window).status(),
                       "campaign window (neither a configured window's name nor a spec)");
  }

  // Resolve the selector now: the plan is this snapshot.
  const absl::Time now = deps_.clock.Now();
  CF_ASSIGN_OR_RETURN(std::vector<store::AgentRecord> agents, deps_.store.ListAgents());
  std::set<std::string> with_problem;
  if (!spec.problem.empty()) {
    store::CertificateFilter filter;
    filter.code = spec.problem;
    CF_ASSIGN_OR_RETURN(auto rows, deps_.store.ListCertificates(filter));
    for (const auto& row : rows) with_problem.insert(row.agent_id);
    for (const auto& a : agents) {
      if (std::find(a.drift.begin(), a.drift.end(), spec.problem) != a.drift.end()) {
        with_problem.insert(a.id);
      }
    }
  }
  struct Candidate {
    const store::AgentRecord* agent;
    std::string thumbprint;
    std::optional<absl::Time> not_after;
  };
  std::vector<Candidate> chosen;
  for (const auto& a : agents) {
    if (!LabelsMatch(spec.labels, a.labels) || !GlobMatches(spec.fqdn_glob, a.fqdn)) continue;
    if (!spec.problem.empty() && !with_problem.count(a.id)) continue;
    store::CertificateFilter filter;
    filter.agent_id = a.id;
    CF_ASSIGN_OR_RETURN(auto rows, deps_.store.ListCertificates(filter));
    const store::CertificateRecord* bound = BoundOf(rows);
    if (spec.expiring_within &&
        (bound == nullptr || bound->info.not_after >= now + *spec.expiring_within)) {
      continue;
    }
    Candidate c{&a, "", std::nullopt};
    if (bound != nullptr) {
      c.thumbprint = bound->info.thumbprint;
      c.not_after = bound->info.not_after;
    }
    chosen.push_back(c);
  }
  if (chosen.empty()) {
    return absl::FailedPreconditionError("no host matches the campaign's selector");
  }
  // Soonest-expiring bound certificate first (hosts without one last), then FQDN.
  std::stable_sort(chosen.begin(), chosen.end(), [](const Candidate& x, const Candidate& y) {
    absl::Time tx = x.not_after.value_or(absl::InfiniteFuture());
    absl::Time ty = y.not_after.value_or(absl::InfiniteFuture());
    if (tx != ty) return tx < ty;
    return x.agent->fqdn < y.agent->fqdn;
  });
  const std::vector<int> ends = common::model::WaveEnds(steps, static_cast<int>(chosen.size()));

  store::CampaignRecord c;
  c.id = NewCampaignId();
  c.name = request.name;
  c.spec = spec;
  c.state = CampaignState::kPlanned;
  c.wave_count = static_cast<int>(ends.size());
  c.created_by = request.created_by;
  c.created_at = now;
  c.updated_at = now;
  std::vector<store::CampaignTargetRecord> targets;
  int wave = 0;
  for (size_t i = 0; i < chosen.size(); ++i) {
    while (static_cast<int>(i) >= ends[wave]) ++wave;
    store::CampaignTargetRecord t;
    t.campaign_id = c.id;
    t.position = static_cast<int>(i);
    t.wave = wave;
    t.agent_id = chosen[i].agent->id;
    t.fqdn = chosen[i].agent->fqdn;
    t.previous_thumbprint = chosen[i].thumbprint;
    t.previous_not_after = chosen[i].not_after;
    targets.push_back(std::move(t));
  }
  CF_RETURN_IF_ERROR(deps_.store.CreateCampaign(c, targets));
  Audit(request.created_by, "campaign.create", c.id,
        {{"name", c.name},
         {"hosts", absl::StrCat(targets.size())},
         {"waves", absl::StrJoin(ends, ",")},
         {"max_failures", spec.max_failures},
         {"window", spec.window},
         {"emergency", spec.emergency ? "true" : "false"}});
  if (spec.emergency) {
    Audit(request.created_by, "campaign.emergency_override", c.id,
          {{"reason", "created with --emergency: hard maintenance windows do not apply"}});
  }
  common::LogInfo("campaign ", c.id, " (", c.name, ") planned: ", targets.size(), " hosts in ",
                  ends.size(), " waves");
  return ViewOf(std::move(c));
}

absl::StatusOr<CampaignView> CampaignService::ViewOf(store::CampaignRecord c) {
  CampaignView view;
  CF_ASSIGN_OR_RETURN(view.targets, deps_.store.ListCampaignTargets(c.id));
  CF_ASSIGN_OR_RETURN(auto steps, common::model::ParseWaves(c.spec.waves));
  const int hosts = static_cast<int>(view.targets.size());
  view.wave_ends = common::model::WaveEnds(steps, hosts);
  view.counts.resize(view.wave_ends.size());
  for (const auto& t : view.targets) {
    if (t.wave >= 0 && t.wave < static_cast<int>(view.counts.size())) {
      ++view.counts[t.wave][std::string(common::model::TargetStateName(t.state))];
    }
    if (common::model::IsFailure(t.state)) ++view.failures;
  }
  CF_ASSIGN_OR_RETURN(auto budget, common::model::ParseFailureBudget(c.spec.max_failures));
  view.allowed_failures = common::model::AllowedFailures(budget, hosts);
  view.campaign = std::move(c);
  return view;
}

absl::StatusOr<CampaignView> CampaignService::Get(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(store::CampaignRecord c, deps_.store.GetCampaign(id));
  return ViewOf(std::move(c));
}

absl::StatusOr<std::vector<store::CampaignRecord>> CampaignService::List() {
  return deps_.store.ListCampaigns();
}

absl::StatusOr<std::vector<TargetPlan>> CampaignService::Plan(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(store::CampaignRecord c, deps_.store.GetCampaign(id));
  CF_ASSIGN_OR_RETURN(auto targets, deps_.store.ListCampaignTargets(id));
  const std::string profile = c.spec.profile.empty() ? "scom" : c.spec.profile;
  const std::string issuer = c.spec.issuer.empty() ? options_.default_issuer : c.spec.issuer;
  const std::string change =
      absl::StrCat("renew via ", issuer, " (profile ", profile, ")",
                   c.spec.bind ? ", then rebind and verify 20053" : ", install without rebind");
  std::vector<TargetPlan> plan;
  for (auto& t : targets) {
    TargetPlan p;
    p.connected = deps_.fleet.IsConnected(t.agent_id);
    store::CertificateFilter filter;
    filter.agent_id = t.agent_id;
    CF_ASSIGN_OR_RETURN(auto rows, deps_.store.ListCertificates(filter));
    if (const store::CertificateRecord* bound = BoundOf(rows)) {
      p.bound_thumbprint = bound->info.thumbprint;
      p.bound_not_after = bound->info.not_after;
    } else {
      p.warnings.push_back("no bound certificate: the new one will be bound");
    }
    p.change = change;
    if (t.state == TargetState::kPending) {
      if (!p.connected) p.warnings.push_back("offline now");
      store::RenewalFilter active;
      active.agent_id = t.agent_id;
      active.active_only = true;
      CF_ASSIGN_OR_RETURN(auto jobs, deps_.store.ListRenewals(active));
      if (!jobs.empty()) {
        p.warnings.push_back(absl::StrCat("renewal ", jobs.front().id, " active: waits for it"));
      }
      std::string why;
      if (!WindowAllows(c, t, &why)) p.warnings.push_back(why);
    }
    p.target = std::move(t);
    plan.push_back(std::move(p));
  }
  return plan;
}

// --- Controls ---

absl::StatusOr<CampaignView> CampaignService::Control(
    absl::string_view id, absl::string_view actor, absl::string_view action,
    const std::function<absl::Status(store::CampaignRecord&)>& f) {
  CF_ASSIGN_OR_RETURN(store::CampaignRecord c, deps_.store.GetCampaign(id));
  CF_RETURN_IF_ERROR(f(c));
  Audit(actor, absl::StrCat("campaign.", action), c.id,
        {{"state", std::string(common::model::CampaignStateName(c.state))}, {"reason", c.reason}});
  Post(c.id);
  return ViewOf(std::move(c));
}

absl::Status CampaignService::SetState(store::CampaignRecord& c, CampaignState state,
                                       absl::string_view reason) {
  const CampaignState expected = c.state;
  const absl::Time now = deps_.clock.Now();
  c.state = state;
  c.reason = std::string(reason);
  c.updated_at = now;
  if (state == CampaignState::kRunning && !c.started_at) c.started_at = now;
  if (common::model::IsFinal(state)) c.finished_at = now;
  absl::Status s = deps_.store.UpdateCampaign(c, expected);
  if (!s.ok()) c.state = expected;
  return s;
}

absl::StatusOr<CampaignView> CampaignService::Start(absl::string_view id, absl::string_view actor) {
  return Control(id, actor, "start", [&](store::CampaignRecord& c) -> absl::Status {
    if (c.state != CampaignState::kPlanned) {
      return absl::FailedPreconditionError(absl::StrCat(
          "campaign ", c.id, " is ", common::model::CampaignStateName(c.state), ", not planned"));
    }
    return SetState(c, CampaignState::kRunning, "");
  });
}

absl::StatusOr<CampaignView> CampaignService::Pause(absl::string_view id, absl::string_view actor) {
  return Control(id, actor, "pause", [&](store::CampaignRecord& c) -> absl::Status {
    if (c.state != CampaignState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat(
          "campaign ", c.id, " is ", common::model::CampaignStateName(c.state), ", not running"));
    }
    return SetState(c, CampaignState::kPaused, absl::StrCat("paused by ", actor));
  });
}

absl::StatusOr<CampaignView> CampaignService::Resume(absl::string_view id,
                                                     absl::string_view actor) {
  return Control(id, actor, "resume", [&](store::CampaignRecord& c) -> absl::Status {
    if (c.state != CampaignState::kPaused && c.state != CampaignState::kHalted) {
      return absl::FailedPreconditionError(absl::StrCat("campaign ", c.id, " is ",
                                                        common::model::CampaignStateName(c.state),
                                                        ", not paused or halted"));
    }
    if (c.state == CampaignState::kHalted) {
      CF_ASSIGN_OR_RETURN(auto targets, deps_.store.ListCampaignTargets(c.id));
      c.failures_acknowledged =
          static_cast<int>(std::count_if(targets.begin(), targets.end(), [](const auto& t) {
            return common::model::IsFailure(t.state);
          }));
    }
    return SetState(c, CampaignState::kRunning, "");
  });
}

absl::StatusOr<CampaignView> CampaignService::Cancel(absl::string_view id, absl::string_view actor,
                                                     absl::string_view reason) {
  return Control(id, actor, "cancel", [&](store::CampaignRecord& c) -> absl::Status {
    if (common::model::IsFinal(c.state)) {
      return absl::FailedPreconditionError(absl::StrCat("campaign ", c.id, " is already ",
                                                        common::model::CampaignStateName(c.state)));
    }
    CF_RETURN_IF_ERROR(
        SetState(c, CampaignState::kCancelled,
                 reason.empty() ? absl::StrCat("cancelled by ", actor) : std::string(reason)));
    // The hosts that had not started never will; the ones in flight finish (Drive follows them).
    CF_ASSIGN_OR_RETURN(auto targets, deps_.store.ListCampaignTargets(c.id));
    for (auto& t : targets) {
      if (t.state != TargetState::kPending) continue;
      t.state = TargetState::kCancelled;
      t.reason = "campaign cancelled before this host started";
      t.finished_at = deps_.clock.Now();
      absl::Status s = deps_.store.UpdateCampaignTarget(t, TargetState::kPending);
      if (!s.ok() && !absl::IsFailedPrecondition(s)) return s;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<CampaignView> CampaignService::Revert(absl::string_view id,
                                                     absl::string_view actor) {
  return Control(id, actor, "revert", [&](store::CampaignRecord& c) -> absl::Status {
    if (c.state != CampaignState::kHalted && c.state != CampaignState::kPaused) {
      return absl::FailedPreconditionError(
          absl::StrCat("campaign ", c.id, " is ", common::model::CampaignStateName(c.state),
                       ": pause it (or let it halt) before reverting a wave"));
    }
    CF_ASSIGN_OR_RETURN(auto targets, deps_.store.ListCampaignTargets(c.id));
    int reverted = 0;
    for (auto& t : targets) {
      if (t.wave != c.current_wave || t.state != TargetState::kSucceeded ||
          t.previous_thumbprint.empty()) {
        continue;
      }
      commands::CreateRequest req;
      req.id = absl::StrCat(RenewalIdFor(c.id, t.agent_id), ".revert");
      req.agent = t.agent_id;
      req.payload = common::model::RebindPayload{t.previous_thumbprint};
      req.timeout = c.spec.offline_deadline;
      req.created_by = std::string(actor);
      // Recorded first: a crash after the command was created finds it again by its id.
      store::CampaignTargetRecord next = t;
      next.state = TargetState::kReverting;
      next.revert_command_id = req.id;
      next.reason = absl::StrCat("reverting to ", t.previous_thumbprint);
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kSucceeded));
      absl::StatusOr<store::CommandRecord> cmd = deps_.commands.Create(req);
      if (!cmd.ok()) {
        next.state = TargetState::kRevertFailed;
        next.reason = std::string(cmd.status().message());
        CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kReverting));
      }
      ++reverted;
    }
    if (reverted == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("campaign ", c.id, ": no host of wave ", c.current_wave + 1,
                       " was renewed with a previous certificate to go back to"));
    }
    c.reason = absl::StrCat(c.reason.empty() ? "" : absl::StrCat(c.reason, "; "), "reverting ",
                            reverted, " host(s) of wave ", c.current_wave + 1);
    return SetState(c, c.state, c.reason);
  });
}

// --- Driving ---

void CampaignService::Tick() {
  absl::StatusOr<std::vector<store::CampaignRecord>> all = deps_.store.ListCampaigns();
  if (!all.ok()) {
    common::LogError("campaigns: ", all.status().ToString());
    return;
  }
  const absl::Time now = deps_.clock.Now();
  for (const auto& c : *all) {
    if (c.state == CampaignState::kPlanned || c.state == CampaignState::kCompleted) continue;
    // A cancelled campaign's hosts in flight are followed by OnRenewalState; this pass is the
    // safety net for the first day only.
    if (c.state == CampaignState::kCancelled && c.finished_at &&
        *c.finished_at < now - absl::Hours(24)) {
      continue;
    }
    Post(c.id);
  }
}

void CampaignService::OnRenewalState(const store::RenewalRecord& record) {
  if (!common::model::IsTerminal(record.state)) return;
  size_t dot = record.id.find('.');
  if (dot == std::string::npos || record.id.rfind("cmp-", 0) != 0) return;
  Post(record.id.substr(0, dot));
}

void CampaignService::Post(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (running_.count(id)) {
      again_.insert(id);
      return;
    }
    running_.insert(id);
  }
  deps_.executor.Post([this, id] { RunDrive(id); });
}

void CampaignService::RunDrive(const std::string& id) {
  while (true) {
    if (absl::Status s = Drive(id); !s.ok()) {
      common::LogError("campaign ", id, ": ", s.ToString());
    }
    absl::MutexLock lock(&mu_);
    if (!again_.erase(id)) {
      running_.erase(id);
      return;
    }
  }
}

bool CampaignService::WindowAllows(const store::CampaignRecord& c,
                                   const store::CampaignTargetRecord& t, std::string* why) {
  if (c.spec.window.empty()) return true;
  policy::MaintenanceWindow window;
  bool hard = true;
  if (auto it = deps_.windows.find(c.spec.window); it != deps_.windows.end()) {
    window = it->second.window;
    hard = it->second.hard;
  } else {
    absl::StatusOr<policy::MaintenanceWindow> parsed =
        policy::ParseMaintenanceWindow(c.spec.window);
    if (!parsed.ok()) {
      *why = std::string(parsed.status().message());
      return false;
    }
    window = *std::move(parsed);
  }
  const absl::Time now = deps_.clock.Now();
  if (policy::WindowContains(window, now)) return true;
  const absl::Time opens = policy::NextWindowOpening(window, now);
  if (hard && c.spec.emergency) return true;  // audited when the campaign was created
  // A soft window gives way when the host's certificate would expire before it opens again
  // (with a day to spare for the renewal itself).
  if (!hard && t.previous_not_after && *t.previous_not_after - absl::Hours(24) < opens) {
    return true;
  }
  *why = absl::StrCat("outside the ", hard ? "hard" : "soft", " maintenance window '", window.spec,
                      "'; it opens ", common::FormatRfc3339(opens));
  return false;
}

absl::Status CampaignService::Drive(const std::string& id) {
  CF_ASSIGN_OR_RETURN(store::CampaignRecord c, deps_.store.GetCampaign(id));
  if (c.state == CampaignState::kPlanned || c.state == CampaignState::kCompleted) {
    return absl::OkStatus();
  }
  CF_ASSIGN_OR_RETURN(std::vector<store::CampaignTargetRecord> targets,
                      deps_.store.ListCampaignTargets(id));
  const absl::Time now = deps_.clock.Now();

  // 1. Follow the hosts in flight: renewals and reverts.
  for (auto& t : targets) {
    if (t.state == TargetState::kRunning) {
      absl::StatusOr<store::RenewalRecord> r = deps_.store.GetRenewal(t.renewal_id);
      if (absl::IsNotFound(r.status())) {
        // The controller stopped between recording the host as running and starting its job:
        // start it now (the id is the same, so this can never start a second one).
        r = deps_.renewals.Start(StartRequestFor(c, t));
        if (absl::IsFailedPrecondition(r.status())) {
          // Another job of this host came first: back to pending, retried on a later pass.
          store::CampaignTargetRecord next = t;
          next.state = TargetState::kPending;
          next.renewal_id.clear();
          next.reason = absl::StrCat(kBusyPrefix, r.status().message());
          CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kRunning));
          t = next;
          continue;
        }
      }
      if (!r.ok()) return r.status();
      if (!common::model::IsTerminal(r->state)) continue;
      store::CampaignTargetRecord next = t;
      next.finished_at = now;
      switch (r->state) {
        case RenewalState::kDone:
          next.state = TargetState::kSucceeded;
          next.reason = absl::StrCat("renewed: ", r->thumbprint);
          break;
        case RenewalState::kRolledBack:
          next.state = TargetState::kRolledBack;
          next.reason = r->failure_reason.empty() ? "rebind rolled back" : r->failure_reason;
          break;
        default:
          next.state = TargetState::kFailed;
          next.reason = r->failure_reason;
          break;
      }
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kRunning));
      common::LogInfo("campaign ", c.id, ": ", t.fqdn, " ",
                      common::model::TargetStateName(next.state), " (", next.reason, ")");
      t = next;
    } else if (t.state == TargetState::kReverting) {
      absl::StatusOr<store::CommandRecord> cmd = deps_.store.GetCommand(t.revert_command_id);
      if (!cmd.ok() && !absl::IsNotFound(cmd.status())) return cmd.status();
      if (cmd.ok() && !cmd->outcome.has_value()) continue;
      store::CampaignTargetRecord next = t;
      next.finished_at = now;
      if (cmd.ok() && cmd->outcome->state == common::model::CommandState::kSucceeded) {
        next.state = TargetState::kReverted;
        next.reason = absl::StrCat("back on ", t.previous_thumbprint);
      } else {
        next.state = TargetState::kRevertFailed;
        next.reason = cmd.ok() ? cmd->outcome->error : "revert command lost";
      }
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kReverting));
      Audit("controller", "campaign.host.revert", c.id,
            {{"fqdn", t.fqdn},
             {"result", std::string(common::model::TargetStateName(next.state))},
             {"reason", next.reason}});
      t = next;
    }
  }
  if (c.state != CampaignState::kRunning) return absl::OkStatus();

  // 2. The failure budget, over the whole campaign.
  CF_ASSIGN_OR_RETURN(auto budget, common::model::ParseFailureBudget(c.spec.max_failures));
  const int hosts = static_cast<int>(targets.size());
  const int allowed = common::model::AllowedFailures(budget, hosts);
  std::vector<std::string> failed;
  for (const auto& t : targets) {
    if (common::model::IsFailure(t.state)) failed.push_back(absl::StrCat(t.fqdn, ": ", t.reason));
  }
  const int new_failures = static_cast<int>(failed.size()) - c.failures_acknowledged;
  if (new_failures > allowed) {
    std::string reason =
        absl::StrCat("failure budget spent in wave ", c.current_wave + 1, ": ", failed.size(),
                     " host(s) failed (", c.failures_acknowledged, " accepted, ", allowed,
                     " allowed): ", absl::StrJoin(failed, "; "));
    CF_RETURN_IF_ERROR(SetState(c, CampaignState::kHalted, reason));
    common::LogWarning("campaign ", c.id, " halted: ", reason);
    Audit("controller", "campaign.halt", c.id,
          {{"wave", absl::StrCat(c.current_wave + 1)},
           {"failures", absl::StrCat(failed.size())},
           {"allowed", absl::StrCat(allowed)},
           {"reason", reason}});
    Notify("campaign.halted", c, reason);
    return absl::OkStatus();
  }

  // 3. The current wave: soak, gate and promotion; or hosts to start.
  while (c.current_wave < c.wave_count) {
    const int wave = c.current_wave;
    if (!c.wave_started_at) {
      c.wave_started_at = now;
      CF_RETURN_IF_ERROR(SetState(c, c.state, c.reason));
      Audit("controller", "campaign.wave.start", c.id, {{"wave", absl::StrCat(wave + 1)}});
    }
    bool settled = true;
    for (const auto& t : targets) {
      if (t.wave == wave && !common::model::IsSettled(t.state)) settled = false;
    }
    if (!settled) break;
    if (!c.soak_until) {
      c.soak_until = now + c.spec.soak;
      CF_RETURN_IF_ERROR(SetState(c, c.state, c.reason));
    }
    if (now < *c.soak_until) return absl::OkStatus();
    // The gate after the soak: every renewed host of the wave is still bound to its new
    // certificate (its latest inventory), and its rebind saw 20053.
    int verified = 0, regressed = 0, not_reached = 0, rolled_back = 0, failed_hosts = 0;
    std::vector<std::string> regressions;
    for (auto& t : targets) {
      if (t.wave != wave) continue;
      if (t.state == TargetState::kNotReached) ++not_reached;
      if (t.state == TargetState::kRolledBack) ++rolled_back;
      if (t.state == TargetState::kFailed) ++failed_hosts;
      if (t.state != TargetState::kSucceeded) continue;
      CF_ASSIGN_OR_RETURN(store::RenewalRecord r, deps_.store.GetRenewal(t.renewal_id));
      bool healthy = true;
      std::string why;
      if (r.bind) {
        CF_ASSIGN_OR_RETURN(store::AgentRecord agent, deps_.store.GetAgent(t.agent_id));
        bool saw_20053 = false;
        if (r.evidence) {
          for (const auto& e : r.evidence->events) saw_20053 |= e.id == 20053;
        }
        const bool bound_now = common::scom::ChannelSerialMatches(agent.channel_serial, r.serial);
        // An inventory older than the job's end cannot know the new binding yet.
        const bool report_is_newer = agent.last_seen && *agent.last_seen > r.updated_at;
        if (!saw_20053) {
          healthy = false;
          why = "no event 20053 in the rebind's evidence";
        } else if (!bound_now && report_is_newer) {
          healthy = false;
          why = absl::StrCat("no longer bound to the renewed certificate (binding ",
                             agent.channel_serial, ")");
        }
      }
      if (healthy) {
        ++verified;
        continue;
      }
      ++regressed;
      regressions.push_back(absl::StrCat(t.fqdn, ": ", why));
      store::CampaignTargetRecord next = t;
      next.state = TargetState::kFailed;
      next.reason = absl::StrCat("health gate: ", why);
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kSucceeded));
      t = next;
    }
    if (regressed > 0) {
      // Counted against the budget on the next pass (which may halt the campaign).
      Audit("controller", "campaign.wave.gate_failed", c.id,
            {{"wave", absl::StrCat(wave + 1)}, {"regressions", absl::StrJoin(regressions, "; ")}});
      Post(c.id);
      return absl::OkStatus();
    }
    Audit("controller", "campaign.wave.promoted", c.id,
          {{"wave", absl::StrCat(wave + 1)},
           {"verified_20053", absl::StrCat(verified)},
           {"rolled_back", absl::StrCat(rolled_back)},
           {"failed", absl::StrCat(failed_hosts)},
           {"not_reached", absl::StrCat(not_reached)},
           {"failures_total", absl::StrCat(failed.size())},
           {"failures_allowed", absl::StrCat(allowed)},
           {"soak", absl::FormatDuration(c.spec.soak)}});
    common::LogInfo("campaign ", c.id, ": wave ", wave + 1, " passed its gate (", verified,
                    " verified)");
    c.current_wave = wave + 1;
    c.wave_started_at.reset();
    c.soak_until.reset();
    if (c.current_wave >= c.wave_count) {
      int succeeded = 0;
      std::vector<std::string> unreached;
      for (const auto& t : targets) {
        if (t.state == TargetState::kSucceeded) ++succeeded;
        if (t.state == TargetState::kNotReached) unreached.push_back(t.fqdn);
      }
      std::string summary = absl::StrCat(succeeded, " of ", hosts, " host(s) renewed");
      if (!unreached.empty()) {
        absl::StrAppend(&summary, "; not reached: ", absl::StrJoin(unreached, ", "));
      }
      CF_RETURN_IF_ERROR(SetState(c, CampaignState::kCompleted, summary));
      Audit("controller", "campaign.complete", c.id, {{"summary", summary}});
      Notify("campaign.finished", c, summary);
      return absl::OkStatus();
    }
    CF_RETURN_IF_ERROR(SetState(c, c.state, c.reason));
  }
  if (c.current_wave >= c.wave_count) return absl::OkStatus();

  // 4. Start hosts of the current wave, up to max_in_flight in the whole campaign.
  const int wave = c.current_wave;
  int in_flight = static_cast<int>(std::count_if(targets.begin(), targets.end(), [](const auto& t) {
    return t.state == TargetState::kRunning;
  }));
  const bool past_deadline =
      c.wave_started_at && now >= *c.wave_started_at + c.spec.offline_deadline;
  bool started_any = false;
  for (auto& t : targets) {
    if (t.wave != wave || t.state != TargetState::kPending) continue;
    // The deadline is for hosts the campaign cannot reach: offline ones, and ones another
    // renewal keeps busy. A connected host waiting for a window or a free slot keeps waiting.
    const bool connected = deps_.fleet.IsConnected(t.agent_id);
    const bool busy = absl::StartsWith(t.reason, kBusyPrefix);
    if (past_deadline && (!connected || busy)) {
      store::CampaignTargetRecord next = t;
      next.state = TargetState::kNotReached;
      next.finished_at = now;
      next.reason = absl::StrCat(connected ? "kept busy until the deadline by another renewal"
                                           : "offline until the deadline",
                                 t.reason.empty() ? "" : absl::StrCat(" (", t.reason, ")"));
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kPending));
      t = next;
      started_any = true;  // the wave may be settled now
      continue;
    }
    if (in_flight >= c.spec.max_in_flight) break;
    if (!deps_.fleet.IsConnected(t.agent_id)) continue;
    std::string why;
    if (!WindowAllows(c, t, &why)) {
      if (t.reason != why) {
        store::CampaignTargetRecord next = t;
        next.reason = why;
        CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kPending));
        t = next;
      }
      continue;
    }
    store::CampaignTargetRecord next = t;
    next.state = TargetState::kRunning;
    next.renewal_id = RenewalIdFor(c.id, t.agent_id);
    next.started_at = now;
    next.reason.clear();
    CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kPending));
    t = next;
    absl::StatusOr<store::RenewalRecord> r = deps_.renewals.Start(StartRequestFor(c, next));
    if (!r.ok()) {
      // Another job of the host (FailedPrecondition) or a store error: the host waits.
      next.state = TargetState::kPending;
      next.renewal_id.clear();
      next.started_at.reset();
      next.reason = absl::StrCat(kBusyPrefix, r.status().message());
      CF_RETURN_IF_ERROR(deps_.store.UpdateCampaignTarget(next, TargetState::kRunning));
      t = next;
      continue;
    }
    ++in_flight;
    started_any = true;
  }
  if (started_any && past_deadline) Post(c.id);
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string>> CampaignService::AgentsInCampaigns() {
  std::set<std::string> agents;
  CF_ASSIGN_OR_RETURN(auto all, deps_.store.ListCampaigns());
  for (const auto& c : all) {
    if (common::model::IsFinal(c.state)) continue;
    CF_ASSIGN_OR_RETURN(auto targets, deps_.store.ListCampaignTargets(c.id));
    for (const auto& t : targets) {
      if (!common::model::IsSettled(t.state)) agents.insert(t.agent_id);
    }
  }
  return agents;
}

void CampaignService::Audit(absl::string_view actor, absl::string_view action,
                            absl::string_view target,
                            const std::map<std::string, std::string>& details) {
  if (deps_.audit == nullptr) return;
  if (auto s = deps_.audit->Record(actor, action, target, details); !s.ok()) {
    common::LogError("audit of ", action, " on ", target, ": ", s.status().ToString());
  }
}

void CampaignService::Notify(absl::string_view type, const store::CampaignRecord& c,
                             absl::string_view summary) {
  if (deps_.notifier == nullptr) return;
  notify::Event e;
  e.type = std::string(type);
  e.at = deps_.clock.Now();
  e.subject = c.id;
  e.summary = absl::StrCat("campaign ", c.name, " (", c.id, "): ", summary);
  e.fields = {{"campaign", c.id},
              {"name", c.name},
              {"state", std::string(common::model::CampaignStateName(c.state))},
              {"wave", absl::StrCat(c.current_wave + 1)},
              {"reason", c.reason}};
  deps_.notifier->Notify(e);
}

}  // namespace certfleet::controller::campaigns
