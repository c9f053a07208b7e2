#include "controller/enrollment/enrollment_service.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/csr.h"
#include "common/crypto/encoding.h"
#include "common/logging/log.h"
#include "common/model/identity.h"
#include "common/model/join_token.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"

namespace certfleet::controller::enrollment {
namespace {

// At most `n` characters of peer-supplied text, for messages.
absl::string_view Clip(absl::string_view text, size_t n = 253) { return text.substr(0, n); }

}  // namespace

bool IsValidFqdn(absl::string_view fqdn) {
  if (fqdn.empty() || fqdn.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(fqdn, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
  }
  return true;
}

absl::StatusOr<CreatedToken> EnrollmentService::CreateToken(const CreateTokenRequest& request) {
  if (request.ttl <= absl::ZeroDuration() || request.ttl > kMaxTokenTtl) {
    return absl::InvalidArgumentError(absl::StrCat("token TTL ", absl::FormatDuration(request.ttl),
                                                   " must be more than 0 and at most 168h"));
  }
  if (!request.fqdn.empty() && !IsValidFqdn(request.fqdn)) {
    return absl::InvalidArgumentError(absl::StrCat("'", request.fqdn, "' is not a valid FQDN"));
  }
  for (const auto& [k, v] : request.labels) {
    if (k.empty() || k.size() > 63 || v.size() > 253) {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", k, "' must have a key of 1-63 characters and a short value"));
    }
  }
  common::model::JoinToken token{common::crypto::Base64UrlEncode(common::crypto::RandomBytes(32)),
                                 pki_.RootPin()};
  const absl::Time now = clock_.Now();
  store::JoinTokenRecord record;
  record.token_hash = common::crypto::Sha256Hex(token.secret);
  if (!request.fqdn.empty()) record.fqdn = absl::AsciiStrToLower(request.fqdn);
  record.labels = request.labels;
  record.created_at = now;
  record.expires_at = now + request.ttl;
  record.created_by = request.created_by;
  if (!request.agent.empty()) {
    // A re-enrollment token: bound to the agent and its registered FQDN.
    absl::StatusOr<store::AgentRecord> agent = store_.GetAgent(request.agent);
    if (absl::IsNotFound(agent.status())) agent = store_.FindAgentByFqdn(request.agent);
    if (absl::IsNotFound(agent.status())) {
      return absl::NotFoundError(
          absl::StrCat("no agent with id or FQDN '", Clip(request.agent), "'"));
    }
    CF_RETURN_IF_ERROR(agent.status(), "finding agent ", Clip(request.agent));
    if (!request.labels.empty()) {
      return absl::InvalidArgumentError(
          "a re-enrollment token keeps the agent's labels; give no labels with an agent");
    }
    if (!request.fqdn.empty() && !absl::EqualsIgnoreCase(request.fqdn, agent->fqdn)) {
      return absl::InvalidArgumentError(absl::StrCat("agent ", agent->id, " is registered as ",
                                                     agent->fqdn, ", not ", request.fqdn));
    }
    record.agent_id = agent->id;
    record.fqdn = agent->fqdn;
  }
  CF_RETURN_IF_ERROR(store_.CreateJoinToken(record), "storing the join token");
  return CreatedToken{common::model::FormatJoinToken(token), record.expires_at, record.agent_id,
                      record.fqdn.value_or("")};
}

absl::Status CheckIdentityCsr(absl::string_view csr_pem, absl::string_view agent_id,
                              absl::string_view fqdn) {
  CF_ASSIGN_OR_RETURN(common::crypto::X509ReqPtr csr, common::crypto::CsrFromPem(csr_pem),
                      "agent CSR");
  CF_ASSIGN_OR_RETURN(common::crypto::CsrInfo info, common::crypto::InspectCsr(csr.get()),
                      "agent CSR");
  auto refuse = [&](absl::string_view what, absl::string_view name) {
    return absl::PermissionDeniedError(absl::StrCat("the agent CSR asks for ", what, " ",
                                                    Clip(name), "; agent ", agent_id,
                                                    " is registered as ", fqdn));
  };
  if (!info.subject_cn.empty() && !absl::EqualsIgnoreCase(info.subject_cn, fqdn)) {
    return refuse("CN", info.subject_cn);
  }
  for (const std::string& dns : info.dns_names) {
    if (!absl::EqualsIgnoreCase(dns, fqdn)) return refuse("DNS name", dns);
  }
  const std::string uri = common::model::AgentIdentityUri(agent_id);
  for (const std::string& u : info.uris) {
    if (u != uri) return refuse("URI", u);
  }
  return absl::OkStatus();
}

absl::StatusOr<EnrollResult> EnrollmentService::Enroll(const EnrollRequest& request) {
  CF_ASSIGN_OR_RETURN(common::model::JoinToken token, common::model::ParseJoinToken(request.token));
  if (token.ca_pin != pki_.RootPin()) {
    return absl::InvalidArgumentError(
        "the join token pins another controller's CA; create a token on this controller");
  }
  const std::string fqdn = absl::AsciiStrToLower(request.fqdn);
  if (!IsValidFqdn(fqdn)) {
    return absl::InvalidArgumentError(absl::StrCat("'", request.fqdn, "' is not a valid FQDN"));
  }
  if (!request.agent_id.empty()) {
    return Reenroll(request, common::crypto::Sha256Hex(token.secret), fqdn);
  }
  const std::string agent_id =
      absl::AsciiStrToLower(common::crypto::HexUpper(common::crypto::RandomBytes(16)));
  CF_ASSIGN_OR_RETURN(ca::IssuedCredential identity,
                      pki_.IssueAgentIdentity(request.csr_pem, agent_id, fqdn));

  const absl::Time now = clock_.Now();
  store::AgentRecord agent;
  agent.id = agent_id;
  agent.fqdn = fqdn;
  agent.platform = request.platform;
  agent.version = request.agent_version;
  agent.enrolled_at = now;
  agent.identity_serial = identity.serial;
  agent.identity_not_after = identity.not_after;
  auto consumed = store_.EnrollAgent(common::crypto::Sha256Hex(token.secret), agent, now);
  if (!consumed.ok()) {
    if (consumed.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnauthenticatedError("unknown join token");
    }
    return consumed.status();
  }
  common::LogInfo("enrolled agent ", agent_id, " for ", fqdn);
  return EnrollResult{agent_id, identity.chain_pem, pki_.RootPem(), identity.serial,
                      identity.not_after};
}

absl::StatusOr<EnrollResult> EnrollmentService::Reenroll(const EnrollRequest& request,
                                                         absl::string_view token_hash,
                                                         absl::string_view fqdn) {
  const std::string& agent_id = request.agent_id;
  if (agent_id.size() > 128 ||
      !common::model::ParseIdentityUri(common::model::AgentIdentityUri(agent_id))) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Clip(agent_id, 128), "' is not an agent id"));
  }
  absl::StatusOr<store::AgentRecord> agent = store_.GetAgent(agent_id);
  if (absl::IsNotFound(agent.status())) {
    return absl::NotFoundError(absl::StrCat(
        "agent ", agent_id,
        " is not enrolled with this controller; enroll the host afresh with a join token"));
  }
  CF_RETURN_IF_ERROR(agent.status(), "re-enrolling agent ", agent_id);
  if (!absl::EqualsIgnoreCase(agent->fqdn, fqdn)) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", agent_id, " is registered as ", agent->fqdn, ", not ", fqdn));
  }
  CF_RETURN_IF_ERROR(CheckIdentityCsr(request.csr_pem, agent_id, agent->fqdn));
  CF_ASSIGN_OR_RETURN(ca::IssuedCredential identity,
                      pki_.IssueAgentIdentity(request.csr_pem, agent_id, agent->fqdn));
  auto consumed =
      store_.ReenrollAgent(token_hash, agent_id, identity.serial, identity.not_after, clock_.Now());
  if (!consumed.ok()) {
    if (absl::IsNotFound(consumed.status())) {
      return absl::UnauthenticatedError("unknown join token");
    }
    return consumed.status();
  }
  common::LogInfo("re-enrolled agent ", agent_id, " (", agent->fqdn, "); identity valid until ",
                  common::FormatRfc3339(identity.not_after));
  return EnrollResult{agent_id, identity.chain_pem, pki_.RootPem(), identity.serial,
                      identity.not_after};
}

absl::StatusOr<EnrollResult> EnrollmentService::RenewIdentity(absl::string_view agent_id,
                                                              absl::string_view csr_pem) {
  absl::StatusOr<store::AgentRecord> agent = store_.GetAgent(agent_id);
  if (absl::IsNotFound(agent.status())) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", agent_id, " is not enrolled with this controller"));
  }
  CF_RETURN_IF_ERROR(agent.status(), "renewing the identity of agent ", agent_id);
  CF_RETURN_IF_ERROR(CheckIdentityCsr(csr_pem, agent_id, agent->fqdn));
  CF_ASSIGN_OR_RETURN(ca::IssuedCredential identity,
                      pki_.IssueAgentIdentity(csr_pem, agent_id, agent->fqdn));
  absl::Status recorded = store_.UpdateAgentIdentity(agent_id, identity.serial, identity.not_after);
  if (absl::IsNotFound(recorded)) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", agent_id, " is not enrolled with this controller"));
  }
  CF_RETURN_IF_ERROR(recorded, "recording the renewed identity of agent ", agent_id);
  common::LogInfo("renewed the identity of agent ", agent_id, " (", agent->fqdn, "); valid until ",
                  common::FormatRfc3339(identity.not_after));
  return EnrollResult{std::string(agent_id), identity.chain_pem, pki_.RootPem(), identity.serial,
                      identity.not_after};
}

}  // namespace certfleet::controller::enrollment
