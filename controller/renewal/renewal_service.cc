#include "controller/renewal/renewal_service.h"

#include <openssl/x509v3.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/describe.h"
#include "common/crypto/encoding.h"
#include "common/crypto/parse.h"
#include "common/logging/log.h"
#include "common/status/status_macros.h"
#include "controller/renewal/csr_policy.h"

namespace certfleet::controller::renewal {
namespace {

using common::model::RenewalState;

std::string NewId() {
  return absl::StrCat(
      "ren-", absl::AsciiStrToLower(common::crypto::HexUpper(common::crypto::RandomBytes(12))));
}

}  // namespace

absl::StatusOr<store::RenewalRecord> RenewalService::Start(const StartRequest& request) {
  if (!request.id.empty()) {
    // Idempotent for automatic callers: the job this id names already exists.
    auto existing = deps_.store.GetRenewal(request.id);
    if (existing.ok()) return existing;
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
  }
  auto agent = deps_.store.GetAgent(request.agent);
  if (agent.status().code() == absl::StatusCode::kNotFound) {
    agent = deps_.store.FindAgentByFqdn(request.agent);
  }
  if (!agent.ok()) {
    if (agent.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("no agent with id or FQDN '", request.agent, "'"));
    }
    return agent.status();
  }
  const std::string profile_name = request.profile.empty() ? "scom" : request.profile;
  auto profile = deps_.profiles.find(profile_name);
  if (profile == deps_.profiles.end()) {
    return absl::NotFoundError(absl::StrCat("no profile '", profile_name, "'"));
  }
  const std::string issuer_name = request.issuer.empty() ? options_.default_issuer : request.issuer;
  if (!deps_.issuers.count(issuer_name)) {
    return absl::NotFoundError(absl::StrCat("no issuer '", issuer_name, "'"));
  }
  store::RenewalFilter active;
  active.agent_id = agent->id;
  active.active_only = true;
  CF_ASSIGN_OR_RETURN(auto running, deps_.store.ListRenewals(active));
  if (!running.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent ", agent->fqdn, " already has renewal ", running.front().id,
                     " in state ", common::model::RenewalStateName(running.front().state)));
  }
  const absl::Time now = deps_.clock.Now();
  store::RenewalRecord r;
  r.id = request.id.empty() ? NewId() : request.id;
  r.agent_id = agent->id;
  r.fqdn = agent->fqdn;
  r.profile = profile->second;
  r.issuer = issuer_name;
  r.bind = request.bind;
  r.state = RenewalState::kPlanned;
  r.steps.push_back({RenewalState::kPlanned, now,
                     absl::StrCat("profile ", profile_name, ", issuer ", issuer_name,
                                  request.bind ? "" : ", no rebind")});
  r.created_by = request.created_by;
  r.created_at = now;
  r.updated_at = now;
  if (absl::Status s = deps_.store.CreateRenewal(r); !s.ok()) {
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      // Another Start for this agent won the race between the check above and this insert.
      return absl::FailedPreconditionError(
          absl::StrCat("agent ", agent->fqdn, " already has an active renewal"));
    }
    return common::Annotate(s, "storing the renewal");
  }
  common::LogInfo("renewal ", r.id, " of ", r.fqdn, " started by ", request.created_by);
  Post(r.id, false);
  return r;
}

absl::StatusOr<store::RenewalRecord> RenewalService::Get(absl::string_view id) {
  return deps_.store.GetRenewal(id);
}

absl::StatusOr<std::vector<store::RenewalRecord>> RenewalService::List(
    absl::string_view agent, const store::RenewalFilter& filter) {
  store::RenewalFilter f = filter;
  if (!agent.empty()) {
    auto a = deps_.store.GetAgent(agent);
    if (a.status().code() == absl::StatusCode::kNotFound) a = deps_.store.FindAgentByFqdn(agent);
    if (!a.ok()) return a.status();
    f.agent_id = a->id;
  }
  return deps_.store.ListRenewals(f);
}

void RenewalService::OnCommandFinal(const store::CommandRecord& command) {
  auto r = deps_.store.FindRenewalByCommand(command.command.id);
  if (r.ok()) Post(r->id, false);
}

void RenewalService::Nudge(absl::string_view id) { Post(std::string(id), true); }

void RenewalService::Post(const std::string& id, bool now) {
  if (now) {
    absl::MutexLock lock(&mu_);
    nudged_.insert(id);
  }
  deps_.executor.Post([this, id] { Advance(id); });
}

void RenewalService::Tick() {
  store::RenewalFilter filter;
  filter.active_only = true;
  auto active = deps_.store.ListRenewals(filter);
  if (!active.ok()) {
    common::LogError("listing active renewals: ", active.status().ToString());
    return;
  }
  const absl::Time now = deps_.clock.Now();
  for (const auto& r : *active) {
    if (r.next_attempt_at <= now) Post(r.id, false);
  }
}

void RenewalService::Advance(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (running_.count(id)) {
      again_.insert(id);  // the running Advance looks once more when it is done
      return;
    }
    running_.insert(id);
  }
  while (true) {
    bool nudged;
    {
      absl::MutexLock lock(&mu_);
      nudged = nudged_.erase(id) > 0;
    }
    auto r = deps_.store.GetRenewal(id);
    if (r.ok()) {
      if (nudged) r->next_attempt_at = absl::InfinitePast();
      // Bounded: a job has fewer steps than this.
      for (int i = 0; i < 32 && !common::model::IsTerminal(r->state) && Step(*r); ++i) {
      }
    } else {
      common::LogError("renewal ", id, ": ", r.status().ToString());
    }
    absl::MutexLock lock(&mu_);
    if (again_.erase(id) == 0) {
      running_.erase(id);
      return;
    }
  }
}

bool RenewalService::Transition(store::RenewalRecord& r, RenewalState state,
                                absl::string_view note) {
  const RenewalState expected = r.state;
  const absl::Time now = deps_.clock.Now();
  r.state = state;
  r.updated_at = now;
  r.next_attempt_at = absl::InfinitePast();
  r.steps.push_back({state, now, std::string(note)});
  absl::Status s = deps_.store.UpdateRenewal(r, expected);
  if (!s.ok()) {
    if (s.code() != absl::StatusCode::kFailedPrecondition) {
      common::LogError("renewal ", r.id, ": ", s.ToString());
    }
    return false;
  }
  common::LogInfo("renewal ", r.id, " of ", r.fqdn, ": ", common::model::RenewalStateName(state),
                  note.empty() ? "" : absl::StrCat(" (", note, ")"));
  if (state_listener_) state_listener_(r);
  return true;
}

bool RenewalService::Fail(store::RenewalRecord& r, absl::string_view reason) {
  r.failure_reason = std::string(reason);
  Transition(r, RenewalState::kFailed, reason);
  return false;
}

bool RenewalService::Save(store::RenewalRecord& r) {
  r.updated_at = deps_.clock.Now();
  absl::Status s = deps_.store.UpdateRenewal(r, r.state);
  if (!s.ok() && s.code() != absl::StatusCode::kFailedPrecondition) {
    common::LogError("renewal ", r.id, ": ", s.ToString());
  }
  return false;
}

std::optional<store::CommandRecord> RenewalService::FinishedCommand(absl::string_view id) {
  auto c = deps_.store.GetCommand(id);
  if (!c.ok() || !common::model::IsFinal(c->state)) return std::nullopt;
  return *c;
}

absl::StatusOr<std::string> RenewalService::CreateCommand(const store::RenewalRecord& r,
                                                          absl::string_view suffix,
                                                          common::model::CommandPayload payload) {
  commands::CreateRequest req;
  req.id = absl::StrCat(r.id, "-", suffix);
  req.agent = r.agent_id;
  req.payload = std::move(payload);
  req.timeout = options_.command_timeout;
  req.created_by = absl::StrCat("renewal ", r.id);
  CF_ASSIGN_OR_RETURN(store::CommandRecord c, deps_.commands.Create(req));
  return c.command.id;
}

bool RenewalService::HandleIssuerAnswer(store::RenewalRecord& r,
                                        const absl::StatusOr<ca::IssuanceResult>& result) {
  const absl::Time now = deps_.clock.Now();
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kFailedPrecondition ||
        result.status().code() == absl::StatusCode::kInvalidArgument) {
      return Fail(r, absl::StrCat("issuer ", r.issuer, ": ", result.status().message()));
    }
    common::LogWarning("renewal ", r.id, ": issuer ", r.issuer, ": ", result.status().ToString(),
                       "; retrying");
    r.next_attempt_at = now + options_.poll_interval;
    return Save(r);
  }
  switch (result->kind) {
    case ca::IssuanceResult::Kind::kIssued: {
      auto chain = common::crypto::CertificatesFromPem(result->chain_pem);
      if (!chain.ok()) {
        return Fail(r, absl::StrCat("issuer ", r.issuer, " returned no certificate"));
      }
      auto info = common::crypto::DescribeCertificate(chain->front().get(), false);
      if (!info.ok()) return Fail(r, "the issued certificate cannot be read");
      r.chain_pem = result->chain_pem;
      r.serial = info->serial;
      r.thumbprint = info->thumbprint;
      return Transition(r, RenewalState::kIssued, absl::StrCat("serial ", info->serial));
    }
    case ca::IssuanceResult::Kind::kPending: {
      const bool first = r.state != RenewalState::kPendingApproval;
      r.issuer_cookie = result->cookie;
      if (r.issuer == "manual") r.approval_request_id = result->cookie;
      r.next_attempt_at = now + std::max(options_.poll_interval, result->retry_after);
      if (first) {
        Transition(
            r, RenewalState::kPendingApproval,
            absl::StrCat("waiting for issuer ", r.issuer, " (request ", result->cookie, ")"));
        // Transition cleared the next attempt time: keep polling at the interval.
        r.next_attempt_at = now + std::max(options_.poll_interval, result->retry_after);
      }
      return Save(r);
    }
    case ca::IssuanceResult::Kind::kRejected:
      return Fail(r, absl::StrCat("issuer ", r.issuer, " rejected the request: ", result->reason));
    case ca::IssuanceResult::Kind::kRetryLater:
      r.next_attempt_at = now + std::max(options_.poll_interval, result->retry_after);
      common::LogInfo("renewal ", r.id, ": issuer ", r.issuer,
                      " asks to retry later: ", result->reason);
      return Save(r);
  }
  return false;
}

bool RenewalService::Step(store::RenewalRecord& r) {
  const absl::Time now = deps_.clock.Now();
  switch (r.state) {
    case RenewalState::kPlanned: {
      auto id = CreateCommand(r, "renew", common::model::RenewPayload{r.profile});
      if (!id.ok()) return Fail(r, absl::StrCat("cannot ask for a CSR: ", id.status().message()));
      r.renew_command_id = *id;
      return Transition(r, RenewalState::kCsrRequested, absl::StrCat("command ", *id));
    }
    case RenewalState::kCsrRequested: {
      auto c = FinishedCommand(r.renew_command_id);
      if (!c) return false;  // the command's end nudges the job
      if (c->state != common::model::CommandState::kSucceeded || !c->outcome ||
          c->outcome->result.csr_pem.empty()) {
        std::string why = c->outcome ? c->outcome->error : "";
        return Fail(r, absl::StrCat("the agent made no key and CSR (",
                                    common::model::CommandStateName(c->state), ": ", why, ")"));
      }
      r.csr_pem = c->outcome->result.csr_pem;
      return Transition(r, RenewalState::kCsrReceived, "");
    }
    case RenewalState::kCsrReceived: {
      absl::Status policy = CheckCsr(r.csr_pem, r.fqdn, r.profile);
      if (!policy.ok()) {
        return Fail(r, absl::StrCat("CSR refused by policy: ", policy.message()));
      }
      return Transition(r, RenewalState::kPolicyChecked, "");
    }
    case RenewalState::kPolicyChecked:
      // Persisted before the issuer sees the request: a crash after this point re-submits, and
      // issuers answer a re-submission with what they already issued for this job.
      return Transition(r, RenewalState::kSubmitted, absl::StrCat("issuer ", r.issuer));
    case RenewalState::kSubmitted:
    case RenewalState::kPendingApproval: {
      if (r.next_attempt_at > now) return false;
      auto issuer = deps_.issuers.find(r.issuer);
      if (issuer == deps_.issuers.end()) {
        return Fail(r, absl::StrCat("issuer ", r.issuer, " is no longer configured"));
      }
      ca::IssuanceRequest req;
      req.renewal_id = r.id;
      req.agent_id = r.agent_id;
      req.fqdn = r.fqdn;
      req.csr_pem = r.csr_pem;
      req.profile = r.profile;
      req.cookie = r.issuer_cookie;
      auto answer =
          r.issuer_cookie.empty() ? issuer->second->Submit(req) : issuer->second->Poll(req);
      return HandleIssuerAnswer(r, answer);
    }
    case RenewalState::kIssued: {
      // A chain ending in a root the host may not trust yet: trust it first (the agent runs
      // commands in order), or the rebind would fail with 20072. Trust is idempotent.
      auto chain = common::crypto::CertificatesFromPem(r.chain_pem);
      if (chain.ok() && chain->size() > 1) {
        X509* last = chain->back().get();
        if (X509_check_issued(last, last) == X509_V_OK) {
          auto trust = CreateCommand(
              r, "trust", common::model::TrustPayload{common::crypto::CertificateToPem(last)});
          if (!trust.ok()) {
            return Fail(r, absl::StrCat("cannot send the CA: ", trust.status().message()));
          }
        }
      }
      common::model::InstallPayload install;
      install.chain_pem = r.chain_pem;
      install.bind = false;  // the rebind is its own step, with its own evidence
      auto id = CreateCommand(r, "install", install);
      if (!id.ok())
        return Fail(r, absl::StrCat("cannot send the certificate: ", id.status().message()));
      r.install_command_id = *id;
      return Transition(r, RenewalState::kInstallSent, absl::StrCat("command ", *id));
    }
    case RenewalState::kInstallSent: {
      auto c = FinishedCommand(r.install_command_id);
      if (!c) return false;
      if (c->state != common::model::CommandState::kSucceeded) {
        return Fail(r, absl::StrCat("install failed: ", c->outcome ? c->outcome->error : ""));
      }
      return Transition(r, RenewalState::kInstalled, absl::StrCat("thumbprint ", r.thumbprint));
    }
    case RenewalState::kInstalled: {
      if (!r.bind) return Transition(r, RenewalState::kDone, "installed; not bound (--no-bind)");
      common::model::RebindPayload rebind{r.thumbprint, options_.verify_timeout};
      auto id = CreateCommand(r, "bind", rebind);
      if (!id.ok()) return Fail(r, absl::StrCat("cannot send the rebind: ", id.status().message()));
      r.bind_command_id = *id;
      return Transition(r, RenewalState::kBindSent, absl::StrCat("command ", *id));
    }
    case RenewalState::kBindSent: {
      auto c = FinishedCommand(r.bind_command_id);
      if (!c) return false;
      if (c->outcome) r.evidence = c->outcome->result;
      if (c->state == common::model::CommandState::kSucceeded) {
        return Transition(r, RenewalState::kVerified, "the HealthService loaded it (20053)");
      }
      std::string why = c->outcome ? c->outcome->error : "";
      if (c->outcome && c->outcome->result.rolled_back) {
        r.failure_reason = why;
        Transition(r, RenewalState::kRolledBack, why);
        return false;
      }
      return Fail(r, absl::StrCat("rebind failed: ", why));
    }
    case RenewalState::kVerified:
      return Transition(r, RenewalState::kDone, "");
    case RenewalState::kDone:
    case RenewalState::kRolledBack:
    case RenewalState::kFailed:
      return false;
  }
  return false;
}

}  // namespace certfleet::controller::renewal
