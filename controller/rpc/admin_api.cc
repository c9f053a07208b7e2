#include "controller/rpc/admin_api.h"

#include <algorithm>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/describe.h"
#include "common/crypto/parse.h"
#include "common/logging/log.h"
#include "common/rpc/command_convert.h"
#include "common/rpc/grpc_status.h"
#include "common/time/format.h"
#include "controller/rpc/admin_call.h"
#include "controller/rpc/convert.h"
#include "controller/rpc/peer_identity.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::controller::rpc {
namespace {

using common::model::PeerIdentity;
using common::model::Role;
using google::protobuf::util::TimeUtil;

// "k1=v1,k2=v2", keys sorted.
std::string LabelsText(const std::map<std::string, std::string>& labels) {
  return absl::StrJoin(labels, ",", absl::PairFormatter("="));
}

void ToProto(const store::AuditRecord& r, certfleet::v1::AuditEntry* out) {
  out->set_seq(r.seq);
  *out->mutable_at() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(r.at));
  out->set_actor(r.actor);
  out->set_action(r.action);
  out->set_target(r.target);
  out->set_details(r.details);
  out->set_prev_hash(r.prev_hash);
  out->set_hash(r.hash);
}

// serial, thumbprint and not_after of the leaf of `chain_pem`, for the audit log. The approval
// queue checked the chain already; should the leaf not parse here after all, the entry says so
// ("certificate": "unreadable") rather than leaving the change unrecorded.
std::map<std::string, std::string> LeafDetails(absl::string_view chain_pem) {
  auto leaf = common::crypto::CertificateFromPem(chain_pem);
  if (!leaf.ok()) return {{"certificate", "unreadable"}};
  auto info = common::crypto::DescribeCertificate(leaf->get(), /*has_private_key=*/false);
  if (!info.ok()) return {{"certificate", "unreadable"}};
  return {{"serial", info->serial},
          {"thumbprint", info->thumbprint},
          {"not_after", common::FormatRfc3339(info->not_after)}};
}

// The most entries one ListAudit call returns; clients page with after_seq.
constexpr int kMaxAuditPage = 10'000;

}  // namespace

void AdminApiService::Audit(const PeerIdentity& who, absl::string_view action,
                            absl::string_view target,
                            const std::map<std::string, std::string>& details) {
  absl::StatusOr<store::AuditRecord> entry = audit_.Record(ActorOf(who), action, target, details);
  if (!entry.ok()) {
    common::LogError("audit: ", action, " on '", target, "' by ", ActorOf(who),
                     " took effect but was not recorded: ", entry.status().ToString());
  }
}

grpc::ServerUnaryReactor* AdminApiService::CreateJoinToken(
    grpc::CallbackServerContext* context, const certfleet::v1::CreateJoinTokenRequest* request,
    certfleet::v1::CreateJoinTokenResponse* response) {
  return RunAdminCall(
      context, executor_, Role::kOperator, "CreateJoinToken",
      [this, request, response](const PeerIdentity& who) -> absl::Status {
        enrollment::CreateTokenRequest req;
        req.ttl = request->has_ttl()
                      ? absl::Milliseconds(TimeUtil::DurationToMilliseconds(request->ttl()))
                      : absl::Hours(1);
        req.fqdn = request->fqdn();
        req.labels.insert(request->labels().begin(), request->labels().end());
        req.agent = request->agent();
        req.created_by = who.name;
        auto token = service_.CreateJoinToken(req);
        if (!token.ok()) return token.status();
        response->set_token(token->token);
        *response->mutable_expires_at() =
            TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(token->expires_at));
        common::LogInfo(
            "operator ", who.name,
            token->agent_id.empty()
                ? " created a join token"
                : absl::StrCat(" created a re-enrollment token for agent ", token->agent_id),
            token->fqdn.empty() ? "" : absl::StrCat(" for ", token->fqdn), " valid until ",
            absl::FormatTime(token->expires_at));
        // Never the token itself: it is a secret until used.
        std::map<std::string, std::string> details = {
            {"fqdn", token->fqdn},
            {"labels", LabelsText(req.labels)},
            {"ttl", absl::FormatDuration(req.ttl)},
            {"expires_at", common::FormatRfc3339(token->expires_at)}};
        if (!token->agent_id.empty()) details["agent"] = token->agent_id;
        details["purpose"] = token->agent_id.empty() ? "join" : "re-enrollment";
        Audit(who, "token.create", token->agent_id.empty() ? token->fqdn : token->agent_id,
              details);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminApiService::ListAgents(
    grpc::CallbackServerContext* context, const certfleet::v1::ListAgentsRequest* /*request*/,
    certfleet::v1::ListAgentsResponse* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "ListAgents",
                      [this, response](const PeerIdentity&) -> absl::Status {
                        auto agents = service_.ListAgents();
                        if (!agents.ok()) return agents.status();
                        for (const auto& a : *agents) ToProto(a, response->add_agents());
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::ListCertificates(
    grpc::CallbackServerContext* context, const certfleet::v1::ListCertificatesRequest* request,
    certfleet::v1::ListCertificatesResponse* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "ListCertificates",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        admin::CertificateQuery q;
                        q.agent = request->agent();
                        if (request->has_expiring_within()) {
                          q.expiring_within = absl::Milliseconds(
                              TimeUtil::DurationToMilliseconds(request->expiring_within()));
                        }
                        q.code = request->problem();
                        auto rows = service_.ListCertificates(q);
                        if (!rows.ok()) return rows.status();
                        for (const auto& r : *rows) ToProto(r, response->add_rows());
                        return absl::OkStatus();
                      });
}

absl::Status AdminApiService::Describe(const store::CommandRecord& record,
                                       certfleet::v1::CommandInfo* out) {
  auto fqdns = service_.AgentFqdns();
  if (!fqdns.ok()) return fqdns.status();
  ToProto(record, (*fqdns)[record.command.agent_id], out);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminApiService::CreateCommand(
    grpc::CallbackServerContext* context, const certfleet::v1::CreateCommandRequest* request,
    certfleet::v1::CommandInfo* response) {
  return RunAdminCall(
      context, executor_, Role::kOperator, "CreateCommand",
      [this, request, response](const PeerIdentity& who) -> absl::Status {
        certfleet::v1::Command wire = request->command();
        wire.set_id("new");  // assigned by the controller
        auto parsed = common::rpc::FromProto(wire);
        if (!parsed.ok()) return parsed.status();
        commands::CreateRequest req;
        req.agent = request->agent();
        req.payload = std::move(parsed->payload);
        if (request->has_timeout()) {
          req.timeout = absl::Milliseconds(TimeUtil::DurationToMilliseconds(request->timeout()));
        }
        req.created_by = who.name;
        auto record = commands_.Create(req);
        if (!record.ok()) return record.status();
        absl::Status described = Describe(*record, response);
        // Kind, host and thumbprint only: never an import's data or password.
        std::map<std::string, std::string> details = {
            {"agent", record->command.agent_id},
            {"fqdn", response->fqdn()},
            {"kind", std::string(common::model::CommandKindName(
                         common::model::KindOf(record->command.payload)))},
            {"deadline", common::FormatRfc3339(record->command.deadline)}};
        if (!response->thumbprint().empty()) details["thumbprint"] = response->thumbprint();
        Audit(who, "command.create", record->command.id, details);
        return described;
      });
}

grpc::ServerUnaryReactor* AdminApiService::GetCommand(
    grpc::CallbackServerContext* context, const certfleet::v1::GetCommandRequest* request,
    certfleet::v1::CommandInfo* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "GetCommand",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        auto record = commands_.Get(request->id());
                        if (!record.ok()) {
                          if (record.status().code() == absl::StatusCode::kNotFound) {
                            return absl::NotFoundError(
                                absl::StrCat("no command '", request->id().substr(0, 128), "'"));
                          }
                          return record.status();
                        }
                        return Describe(*record, response);
                      });
}

grpc::ServerUnaryReactor* AdminApiService::ListCommands(
    grpc::CallbackServerContext* context, const certfleet::v1::ListCommandsRequest* request,
    certfleet::v1::ListCommandsResponse* response) {
  return RunAdminCall(
      context, executor_, Role::kViewer, "ListCommands",
      [this, request, response](const PeerIdentity&) -> absl::Status {
        std::optional<common::model::CommandState> state;
        if (!request->state().empty()) {
          state = common::model::CommandStateFromName(request->state());
          if (!state) {
            return absl::InvalidArgumentError(
                absl::StrCat("'", request->state().substr(0, 32),
                             "' is not a command state (queued, sent, running, succeeded, failed, "
                             "cancelled, expired)"));
          }
        }
        size_t limit = request->limit() > 0 ? static_cast<size_t>(request->limit()) : 0;
        auto records = commands_.List(request->agent(), state, limit);
        if (!records.ok()) return records.status();
        auto fqdns = service_.AgentFqdns();
        if (!fqdns.ok()) return fqdns.status();
        for (const auto& r : *records) {
          ToProto(r, (*fqdns)[r.command.agent_id], response->add_commands());
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminApiService::CancelCommand(
    grpc::CallbackServerContext* context, const certfleet::v1::CancelCommandRequest* request,
    certfleet::v1::CommandInfo* response) {
  return RunAdminCall(
      context, executor_, Role::kOperator, "CancelCommand",
      [this, request, response](const PeerIdentity& who) -> absl::Status {
        auto record = commands_.Cancel(request->id());
        if (!record.ok()) return record.status();
        common::LogInfo("operator ", who.name, " cancelled command ", request->id());
        absl::Status described = Describe(*record, response);
        Audit(who, "command.cancel", record->command.id,
              {{"agent", record->command.agent_id},
               {"fqdn", response->fqdn()},
               {"kind", std::string(common::model::CommandKindName(
                            common::model::KindOf(record->command.payload)))},
               {"state", std::string(common::model::CommandStateName(record->state))},
               {"cancel_requested", record->cancel_requested ? "true" : "false"}});
        return described;
      });
}

grpc::ServerUnaryReactor* AdminApiService::StartRenewal(
    grpc::CallbackServerContext* context, const certfleet::v1::StartRenewalRequest* request,
    certfleet::v1::RenewalInfo* response) {
  return RunAdminCall(context, executor_, Role::kOperator, "StartRenewal",
                      [this, request, response](const PeerIdentity& who) -> absl::Status {
                        renewal::StartRequest req;
                        req.agent = request->agent();
                        req.profile = request->profile();
                        req.issuer = request->issuer();
                        req.bind = !request->no_bind();
                        req.created_by = who.name;
                        auto r = renewals_.Start(req);
                        if (!r.ok()) return r.status();
                        ToProto(*r, response);
                        Audit(who, "renewal.start", response->id(),
                              {{"agent", response->agent_id()},
                               {"fqdn", response->fqdn()},
                               {"profile", response->profile()},
                               {"issuer", response->issuer()},
                               {"bind", response->bind() ? "true" : "false"}});
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::GetRenewal(
    grpc::CallbackServerContext* context, const certfleet::v1::GetRenewalRequest* request,
    certfleet::v1::RenewalInfo* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "GetRenewal",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        auto r = renewals_.Get(request->id());
                        if (!r.ok()) {
                          if (r.status().code() == absl::StatusCode::kNotFound) {
                            return absl::NotFoundError(
                                absl::StrCat("no renewal '", request->id().substr(0, 128), "'"));
                          }
                          return r.status();
                        }
                        ToProto(*r, response);
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::ListRenewals(
    grpc::CallbackServerContext* context, const certfleet::v1::ListRenewalsRequest* request,
    certfleet::v1::ListRenewalsResponse* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "ListRenewals",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        store::RenewalFilter filter;
                        if (!request->state().empty()) {
                          filter.state = common::model::RenewalStateFromName(request->state());
                          if (!filter.state) {
                            return absl::InvalidArgumentError(absl::StrCat(
                                "'", request->state().substr(0, 32), "' is not a renewal state"));
                          }
                        }
                        filter.active_only = request->active_only();
                        if (request->limit() > 0)
                          filter.limit = static_cast<size_t>(request->limit());
                        auto rows = renewals_.List(request->agent(), filter);
                        if (!rows.ok()) return rows.status();
                        for (const auto& r : *rows) ToProto(r, response->add_renewals());
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::ListApprovalRequests(
    grpc::CallbackServerContext* context, const certfleet::v1::ListApprovalRequestsRequest* request,
    certfleet::v1::ListApprovalRequestsResponse* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "ListApprovalRequests",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        std::optional<common::model::ApprovalState> state;
                        if (!request->state().empty()) {
                          state = common::model::ApprovalStateFromName(request->state());
                          if (!state) {
                            return absl::InvalidArgumentError(
                                absl::StrCat("'", request->state().substr(0, 32),
                                             "' is not a request state (pending, approved, denied, "
                                             "fulfilled)"));
                          }
                        }
                        auto rows = approvals_.List(state);
                        if (!rows.ok()) return rows.status();
                        for (const auto& r : *rows) ToProto(r, response->add_requests());
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::GetApprovalRequest(
    grpc::CallbackServerContext* context, const certfleet::v1::GetApprovalRequestRequest* request,
    certfleet::v1::ApprovalRequestInfo* response) {
  return RunAdminCall(context, executor_, Role::kViewer, "GetApprovalRequest",
                      [this, request, response](const PeerIdentity&) -> absl::Status {
                        auto r = approvals_.Get(request->id());
                        if (!r.ok()) return r.status();
                        ToProto(*r, response);
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::DecideApprovalRequest(
    grpc::CallbackServerContext* context,
    const certfleet::v1::DecideApprovalRequestRequest* request,
    certfleet::v1::ApprovalRequestInfo* response) {
  return RunAdminCall(
      context, executor_, Role::kAdmin, "DecideApprovalRequest",
      [this, request, response](const PeerIdentity& who) -> absl::Status {
        auto r = request->approve() ? approvals_.Approve(request->id(), who.name)
                                    : approvals_.Deny(request->id(), who.name, request->reason());
        if (!r.ok()) return r.status();
        common::LogInfo("officer ", who.name, request->approve() ? " approved" : " denied",
                        " request ", r->id, " for ", r->fqdn);
        renewals_.Nudge(r->renewal_id);
        ToProto(*r, response);
        Audit(who, request->approve() ? "approval.approve" : "approval.deny", r->id,
              {{"renewal", r->renewal_id},
               {"agent", r->agent_id},
               {"fqdn", r->fqdn},
               {"issuer", r->issuer},
               {"reason", r->reason}});
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminApiService::FulfillApprovalRequest(
    grpc::CallbackServerContext* context,
    const certfleet::v1::FulfillApprovalRequestRequest* request,
    certfleet::v1::ApprovalRequestInfo* response) {
  return RunAdminCall(context, executor_, Role::kAdmin, "FulfillApprovalRequest",
                      [this, request, response](const PeerIdentity& who) -> absl::Status {
                        auto r = approvals_.Fulfill(request->id(), who.name, request->chain_pem());
                        if (!r.ok()) return r.status();
                        common::LogInfo("officer ", who.name, " fulfilled request ", r->id, " for ",
                                        r->fqdn);
                        renewals_.Nudge(r->renewal_id);
                        ToProto(*r, response);
                        std::map<std::string, std::string> details = LeafDetails(r->chain_pem);
                        details["renewal"] = r->renewal_id;
                        details["agent"] = r->agent_id;
                        details["fqdn"] = r->fqdn;
                        Audit(who, "approval.fulfill", r->id, details);
                        return absl::OkStatus();
                      });
}

grpc::ServerUnaryReactor* AdminApiService::ListAudit(grpc::CallbackServerContext* context,
                                                     const certfleet::v1::ListAuditRequest* request,
                                                     certfleet::v1::ListAuditResponse* response) {
  return RunAdminCall(
      context, executor_, Role::kViewer, "ListAudit",
      [this, request, response](const PeerIdentity&) -> absl::Status {
        if (request->limit() < 0) {
          return absl::InvalidArgumentError("limit must not be negative");
        }
        store::AuditFilter filter;
        if (request->has_since()) {
          filter.since = absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(request->since()));
        }
        filter.after_seq = request->after_seq();
        filter.limit = request->limit() == 0
                           ? 1000
                           : static_cast<size_t>(std::min(request->limit(), kMaxAuditPage));
        auto entries = audit_.List(filter);
        if (!entries.ok()) return entries.status();
        for (const auto& e : *entries) ToProto(e, response->add_entries());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminApiService::VerifyAudit(
    grpc::CallbackServerContext* context, const certfleet::v1::VerifyAuditRequest* /*request*/,
    certfleet::v1::VerifyAuditResponse* response) {
  return RunAdminCall(context, executor_, Role::kAdmin, "VerifyAudit",
                      [this, response](const PeerIdentity& who) -> absl::Status {
                        auto v = audit_.Verify();
                        if (!v.ok()) return v.status();
                        response->set_entries(v->entries);
                        response->set_ok(v->ok);
                        response->set_first_bad_seq(v->first_bad_seq);
                        response->set_problem(v->problem);
                        if (!v->ok) {
                          common::LogError("audit log verification by ", who.name,
                                           " failed: ", v->problem);
                        }
                        return absl::OkStatus();
                      });
}

}  // namespace certfleet::controller::rpc
