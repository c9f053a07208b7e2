#include "controller/rpc/admin_call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging/log.h"
#include "common/rpc/grpc_status.h"
#include "controller/admin/admin_service.h"
#include "controller/rpc/peer_identity.h"

namespace certfleet::controller::rpc {

grpc::ServerUnaryReactor* RunAdminCall(
    grpc::CallbackServerContext* context, common::Executor& executor, common::model::Role needed,
    absl::string_view method,
    std::function<absl::Status(const common::model::PeerIdentity&)> work) {
  auto* reactor = context->DefaultReactor();
  auto peer = PeerIdentityOf(*context);
  absl::Status allowed = peer.ok() ? admin::AdminService::Authorize(*peer, needed) : peer.status();
  if (!allowed.ok()) {
    common::LogWarning("admin call ", method, " from ", context->peer(),
                       " refused: ", allowed.message());
    reactor->Finish(common::rpc::ToGrpcStatus(allowed));
    return reactor;
  }
  bool posted = executor.Post([reactor, work = std::move(work), who = *peer] {
    reactor->Finish(common::rpc::ToGrpcStatus(work(who)));
  });
  if (!posted) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
  }
  return reactor;
}

std::string ActorOf(const common::model::PeerIdentity& who) {
  if (who.kind == common::model::PeerIdentity::Kind::kAgent) {
    return absl::StrCat("agent/", who.name);
  }
  return absl::StrCat("operator/", common::model::RoleName(who.role), "/", who.name);
}

}  // namespace certfleet::controller::rpc
