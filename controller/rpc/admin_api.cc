#include "controller/rpc/admin_api.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/logging/log.h"
#include "common/rpc/command_convert.h"
#include "common/rpc/grpc_status.h"
#include "controller/rpc/convert.h"
#include "controller/rpc/peer_identity.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::controller::rpc {
namespace {

using common::model::PeerIdentity;
using common::model::Role;
using common::rpc::ToGrpcStatus;
using google::protobuf::util::TimeUtil;

// Authenticates and authorizes the caller, then runs `work` on the executor and finishes the
// call with its status.
grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context, common::Executor& executor,
                              Role needed, absl::string_view method,
                              std::function<absl::Status(const PeerIdentity&)> work) {
  auto* reactor = context->DefaultReactor();
  auto peer = PeerIdentityOf(*context);
  absl::Status allowed = peer.ok() ? admin::AdminService::Authorize(*peer, needed) : peer.status();
  if (!allowed.ok()) {
    common::LogWarning("admin call ", method, " from ", context->peer(),
                       " refused: ", allowed.message());
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  bool posted = executor.Post(
      [reactor, work = std::move(work), who = *peer] { reactor->Finish(ToGrpcStatus(work(who))); });
  if (!posted) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
  }
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AdminApiService::CreateJoinToken(
    grpc::CallbackServerContext* context, const certfleet::v1::CreateJoinTokenRequest* request,
    certfleet::v1::CreateJoinTokenResponse* response) {
  return Run(context, executor_, Role::kOperator, "CreateJoinToken",
             [this, request, response](const PeerIdentity& who) -> absl::Status {
               enrollment::CreateTokenRequest req;
               req.ttl = request->has_ttl()
                             ? absl::Milliseconds(TimeUtil::DurationToMilliseconds(request->ttl()))
                             : absl::Hours(1);
               req.fqdn = request->fqdn();
               req.labels.insert(request->labels().begin(), request->labels().end());
               req.created_by = who.name;
               auto token = service_.CreateJoinToken(req);
               if (!token.ok()) return token.status();
               response->set_token(token->token);
               *response->mutable_expires_at() =
                   TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(token->expires_at));
               common::LogInfo("operator ", who.name, " created a join token",
                               req.fqdn.empty() ? "" : absl::StrCat(" for ", req.fqdn),
                               " valid until ", absl::FormatTime(token->expires_at));
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* AdminApiService::ListAgents(
    grpc::CallbackServerContext* context, const certfleet::v1::ListAgentsRequest* /*request*/,
    certfleet::v1::ListAgentsResponse* response) {
  return Run(context, executor_, Role::kViewer, "ListAgents",
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
  return Run(context, executor_, Role::kViewer, "ListCertificates",
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
  return Run(context, executor_, Role::kOperator, "CreateCommand",
             [this, request, response](const PeerIdentity& who) -> absl::Status {
               certfleet::v1::Command wire = request->command();
               wire.set_id("new");  // assigned by the controller
               auto parsed = common::rpc::FromProto(wire);
               if (!parsed.ok()) return parsed.status();
               commands::CreateRequest req;
               req.agent = request->agent();
               req.payload = std::move(parsed->payload);
               if (request->has_timeout()) {
                 req.timeout =
                     absl::Milliseconds(TimeUtil::DurationToMilliseconds(request->timeout()));
               }
               req.created_by = who.name;
               auto record = commands_.Create(req);
               if (!record.ok()) return record.status();
               return Describe(*record, response);
             });
}

grpc::ServerUnaryReactor* AdminApiService::GetCommand(
    grpc::CallbackServerContext* context, const certfleet::v1::GetCommandRequest* request,
    certfleet::v1::CommandInfo* response) {
  return Run(context, executor_, Role::kViewer, "GetCommand",
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
  return Run(context, executor_, Role::kViewer, "ListCommands",
             [this, request, response](const PeerIdentity&) -> absl::Status {
               std::optional<common::model::CommandState> state;
               if (!request->state().empty()) {
                 state = common::model::CommandStateFromName(request->state());
                 if (!state) {
                   return absl::InvalidArgumentError(absl::StrCat(
                       "'", request->state().substr(0, 32),
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
  return Run(context, executor_, Role::kOperator, "CancelCommand",
             [this, request, response](const PeerIdentity& who) -> absl::Status {
               auto record = commands_.Cancel(request->id());
               if (!record.ok()) return record.status();
               common::LogInfo("operator ", who.name, " cancelled command ", request->id());
               return Describe(*record, response);
             });
}

grpc::ServerUnaryReactor* AdminApiService::StartRenewal(
    grpc::CallbackServerContext* context, const certfleet::v1::StartRenewalRequest* request,
    certfleet::v1::RenewalInfo* response) {
  return Run(context, executor_, Role::kOperator, "StartRenewal",
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
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* AdminApiService::GetRenewal(
    grpc::CallbackServerContext* context, const certfleet::v1::GetRenewalRequest* request,
    certfleet::v1::RenewalInfo* response) {
  return Run(context, executor_, Role::kViewer, "GetRenewal",
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
  return Run(context, executor_, Role::kViewer, "ListRenewals",
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
               if (request->limit() > 0) filter.limit = static_cast<size_t>(request->limit());
               auto rows = renewals_.List(request->agent(), filter);
               if (!rows.ok()) return rows.status();
               for (const auto& r : *rows) ToProto(r, response->add_renewals());
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* AdminApiService::ListApprovalRequests(
    grpc::CallbackServerContext* context, const certfleet::v1::ListApprovalRequestsRequest* request,
    certfleet::v1::ListApprovalRequestsResponse* response) {
  return Run(context, executor_, Role::kViewer, "ListApprovalRequests",
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
  return Run(context, executor_, Role::kViewer, "GetApprovalRequest",
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
  return Run(context, executor_, Role::kAdmin, "DecideApprovalRequest",
             [this, request, response](const PeerIdentity& who) -> absl::Status {
               auto r = request->approve()
                            ? approvals_.Approve(request->id(), who.name)
                            : approvals_.Deny(request->id(), who.name, request->reason());
               if (!r.ok()) return r.status();
               common::LogInfo("officer ", who.name, request->approve() ? " approved" : " denied",
                               " request ", r->id, " for ", r->fqdn);
               renewals_.Nudge(r->renewal_id);
               ToProto(*r, response);
               return absl::OkStatus();
             });
}

grpc::ServerUnaryReactor* AdminApiService::FulfillApprovalRequest(
    grpc::CallbackServerContext* context,
    const certfleet::v1::FulfillApprovalRequestRequest* request,
    certfleet::v1::ApprovalRequestInfo* response) {
  return Run(context, executor_, Role::kAdmin, "FulfillApprovalRequest",
             [this, request, response](const PeerIdentity& who) -> absl::Status {
               auto r = approvals_.Fulfill(request->id(), who.name, request->chain_pem());
               if (!r.ok()) return r.status();
               common::LogInfo("officer ", who.name, " fulfilled request ", r->id, " for ",
                               r->fqdn);
               renewals_.Nudge(r->renewal_id);
               ToProto(*r, response);
               return absl::OkStatus();
             });
}

}  // namespace certfleet::controller::rpc
