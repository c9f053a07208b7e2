#include "controller/rpc/admin_api.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/logging/log.h"
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
  absl::Status allowed =
      peer.ok() ? admin::AdminService::Authorize(*peer, needed) : peer.status();
  if (!allowed.ok()) {
    common::LogWarning("admin call ", method, " from ", context->peer(),
                       " refused: ", allowed.message());
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  bool posted = executor.Post([reactor, work = std::move(work), who = *peer] {
    reactor->Finish(ToGrpcStatus(work(who)));
  });
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

}  // namespace certfleet::controller::rpc
