#include "controller/enrollment/enrollment_service.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/csr.h"
#include "common/crypto/encoding.h"
#include "common/logging/log.h"
#include "common/model/join_token.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::enrollment {

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
  CF_RETURN_IF_ERROR(store_.CreateJoinToken(record), "storing the join token");
  return CreatedToken{common::model::FormatJoinToken(token), record.expires_at};
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
  return EnrollResult{agent_id, identity.chain_pem, pki_.RootPem()};
}

}  // namespace certfleet::controller::enrollment
