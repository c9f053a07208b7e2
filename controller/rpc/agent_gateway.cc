#include "controller/rpc/agent_gateway.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging/log.h"
#include "common/rpc/command_convert.h"
#include "common/rpc/grpc_status.h"
#include "controller/rpc/convert.h"
#include "controller/rpc/peer_identity.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::controller::rpc {
namespace {

using certfleet::v1::AgentMessage;
using certfleet::v1::ControllerMessage;
using common::rpc::ToGrpcStatus;

// One agent's Connect stream.
//
// Lifetime: reference counted. gRPC holds one reference until OnDone; every executor task and
// every close request from the Fleet holds one while it runs. The last Unref deletes.
// Threading: state is guarded by mu_; gRPC operations are started outside mu_. Messages are
// processed one at a time: the next read starts only after the previous message was handled,
// which gives each agent ordered processing without a per-agent queue.
class ConnectReactor final : public grpc::ServerBidiReactor<AgentMessage, ControllerMessage> {
 public:
  ConnectReactor(grpc::CallbackServerContext* context, const AgentGatewayDeps& deps,
                 const AgentGatewayOptions& options)
      : deps_(deps), options_(options), link_(std::make_shared<Link>()) {
    link_->Set(this);
    auto peer = PeerIdentityOf(*context);
    if (!peer.ok()) {
      RequestFinish(ToGrpcStatus(peer.status()));
      return;
    }
    if (peer->kind != common::model::PeerIdentity::Kind::kAgent) {
      RequestFinish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 "only agent identities may open the agent stream"));
      return;
    }
    agent_id_ = peer->name;
    StartNextRead();
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      read_pending_ = false;
    }
    if (!ok) {
      RequestFinish(grpc::Status::OK);
      return;
    }
    auto message = std::make_shared<AgentMessage>(std::move(in_));
    in_.Clear();
    {
      absl::MutexLock lock(&mu_);
      task_pending_ = true;
    }
    Ref();
    if (!deps_.executor.Post([this, message] {
          Handle(*message);
          {
            absl::MutexLock lock(&mu_);
            task_pending_ = false;
          }
          StartNextRead();
          MaybeFinish();
          Unref();
        })) {
      {
        absl::MutexLock lock(&mu_);
        task_pending_ = false;
      }
      RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
      Unref();
    }
  }

  void OnWriteDone(bool ok) override {
    bool start = false;
    {
      absl::MutexLock lock(&mu_);
      write_pending_ = false;
      if (!ok) {
        if (!finish_wanted_) {
          finish_wanted_ = true;
          finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
        }
        outbox_.clear();
      } else if (!outbox_.empty() && !finished_) {
        out_ = std::move(outbox_.front());
        outbox_.pop_front();
        write_pending_ = true;
        start = true;
      }
    }
    if (start) {
      StartWrite(&out_);
    } else {
      MaybeFinish();
    }
  }

  void OnCancel() override {
    RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
  }

  void OnDone() override {
    link_->Detach();
    if (session_ != 0) {
      deps_.fleet.Detach(agent_id_, session_);
      common::LogInfo("agent ", agent_id_, " disconnected");
    }
    Unref();
  }

 private:
  // The stream as the domain sees it (fleet::AgentChannel). Holds the reactor weakly: once
  // OnDone ran, every call is a no-op, so the Fleet and the command service never race the
  // reactor's deletion.
  class Link final : public fleet::AgentChannel {
   public:
    void SendCommand(const common::model::Command& command) override {
      ControllerMessage m;
      common::rpc::ToProto(command, m.mutable_command());
      Deliver(std::move(m));
    }
    void SendCancel(absl::string_view command_id) override {
      ControllerMessage m;
      m.mutable_cancel()->set_command_id(std::string(command_id));
      Deliver(std::move(m));
    }
    void SendCommandAck(absl::string_view command_id) override {
      ControllerMessage m;
      m.mutable_command_ack()->set_command_id(std::string(command_id));
      Deliver(std::move(m));
    }
    void Close(const absl::Status& reason) override {
      if (ConnectReactor* r = Acquire()) {
        r->RequestFinish(ToGrpcStatus(reason));
        r->Unref();
      }
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      reactor_ = nullptr;
    }
    void Set(ConnectReactor* r) {
      absl::MutexLock lock(&mu_);
      reactor_ = r;
    }

   private:
    ConnectReactor* Acquire() {
      absl::MutexLock lock(&mu_);
      if (reactor_) reactor_->Ref();
      return reactor_;
    }
    void Deliver(ControllerMessage m) {
      if (ConnectReactor* r = Acquire()) {
        r->Send(std::move(m));
        r->Unref();
      }
    }
    absl::Mutex mu_;
    ConnectReactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  };

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void StartNextRead() {
    {
      absl::MutexLock lock(&mu_);
      if (finish_wanted_ || finished_ || read_pending_) return;
      read_pending_ = true;
    }
    StartRead(&in_);
  }

  void Send(ControllerMessage message) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_wanted_ || finished_) return;
      if (write_pending_) {
        outbox_.push_back(std::move(message));
        return;
      }
      write_pending_ = true;
      out_ = std::move(message);
    }
    StartWrite(&out_);
  }

  void RequestFinish(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_wanted_) return;
      finish_wanted_ = true;
      finish_status_ = std::move(status);
    }
    MaybeFinish();
  }

  // Finishes once nothing but a read is outstanding (a pending read fails on Finish).
  void MaybeFinish() {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (!finish_wanted_ || finished_ || task_pending_ || write_pending_) return;
      finished_ = true;
      status = finish_status_;
    }
    Finish(status);
  }

  void Handle(const AgentMessage& message) {
    switch (message.payload_case()) {
      case AgentMessage::kHello:
        HandleHello(message.hello());
        return;
      case AgentMessage::kInventory:
        HandleInventory(message.inventory());
        return;
      case AgentMessage::kHeartbeat:
        return;
      case AgentMessage::kCommandUpdate:
        HandleCommandUpdate(message.command_update());
        return;
      case AgentMessage::PAYLOAD_NOT_SET:
        RequestFinish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty agent message"));
        return;
    }
  }

  void HandleHello(const certfleet::v1::Hello& hello) {
    if (!hello.agent_id().empty() && hello.agent_id() != agent_id_) {
      RequestFinish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 "Hello names another agent than the client certificate"));
      return;
    }
    absl::Status s = deps_.fleet.RecordHello(agent_id_, hello.platform().substr(0, 64),
                                             hello.version().substr(0, 64));
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kNotFound) {
        s = absl::PermissionDeniedError(
            absl::StrCat("agent ", agent_id_, " is not enrolled with this controller"));
      }
      RequestFinish(ToGrpcStatus(s));
      return;
    }
    if (session_ == 0) {
      session_ = deps_.fleet.Attach(agent_id_, link_);
      common::LogInfo("agent ", agent_id_, " connected (", hello.facts().fqdn().substr(0, 253),
                      ", ", hello.version().substr(0, 64), ")");
    }
    hello_seen_ = true;
    ControllerMessage welcome;
    // Always a Welcome, also without settings: the agent counts itself accepted on it.
    welcome.mutable_welcome();
    if (options_.scan_interval > absl::ZeroDuration()) {
      *welcome.mutable_welcome()->mutable_scan_interval() =
          google::protobuf::util::TimeUtil::MillisecondsToDuration(
              absl::ToInt64Milliseconds(options_.scan_interval));
    }
    Send(std::move(welcome));
    // Commands not yet final are (re)sent after the Welcome; the agent's journal answers
    // duplicates.
    if (absl::Status s = deps_.commands.OnAgentAttached(agent_id_); !s.ok()) {
      common::LogError("re-sending commands to agent ", agent_id_, ": ", s.ToString());
    }
  }

  void HandleCommandUpdate(const certfleet::v1::CommandUpdate& update) {
    if (!hello_seen_) {
      RequestFinish(
          grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "send Hello before command updates"));
      return;
    }
    absl::Status s;
    if (update.phase() == certfleet::v1::CommandUpdate::RUNNING) {
      s = deps_.commands.OnCommandRunning(agent_id_, update.command_id());
    } else if (update.phase() == certfleet::v1::CommandUpdate::DONE) {
      auto outcome = common::rpc::OutcomeFromProto(update);
      s = outcome.ok() ? deps_.commands.OnCommandDone(agent_id_, update.command_id(), *outcome)
                       : outcome.status();
    } else {
      s = absl::InvalidArgumentError("command update without a phase");
    }
    if (!s.ok()) {
      common::LogWarning("agent ", agent_id_, " command update for ",
                         update.command_id().substr(0, 128), ": ", s.ToString());
      if (s.code() == absl::StatusCode::kInvalidArgument ||
          s.code() == absl::StatusCode::kPermissionDenied) {
        RequestFinish(ToGrpcStatus(s));
      }
    }
  }

  void HandleInventory(const certfleet::v1::Inventory& inventory) {
    if (!hello_seen_) {
      RequestFinish(
          grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "send Hello before Inventory"));
      return;
    }
    auto report = FromProto(inventory, agent_id_);
    if (!report.ok()) {
      common::LogWarning("agent ", agent_id_, " sent a bad inventory: ", report.status().message());
      RequestFinish(ToGrpcStatus(report.status()));
      return;
    }
    auto outcome = deps_.fleet.ApplyInventory(agent_id_, std::move(*report));
    if (!outcome.ok()) {
      common::LogError("storing the inventory of agent ", agent_id_, ": ",
                       outcome.status().message());
      RequestFinish(ToGrpcStatus(outcome.status()));
      return;
    }
    ControllerMessage ack;
    ack.mutable_inventory_ack()->set_generation(outcome->generation);
    ack.mutable_inventory_ack()->set_resync(outcome->resync);
    Send(std::move(ack));
  }

  const AgentGatewayDeps& deps_;
  const AgentGatewayOptions& options_;
  std::shared_ptr<Link> link_;
  std::atomic<int> refs_{1};

  // Touched only by the single message-handling task at a time, or before the first read.
  std::string agent_id_;
  uint64_t session_ = 0;
  bool hello_seen_ = false;
  AgentMessage in_;

  absl::Mutex mu_;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool task_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  std::deque<ControllerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  ControllerMessage out_;  // the write in flight; owned by gRPC until OnWriteDone
};

}  // namespace

grpc::ServerUnaryReactor* AgentGatewayService::Enroll(grpc::CallbackServerContext* context,
                                                      const certfleet::v1::EnrollRequest* request,
                                                      certfleet::v1::EnrollResponse* response) {
  auto* reactor = context->DefaultReactor();
  std::string peer = context->peer();
  bool posted = deps_.executor.Post([this, reactor, request, response, peer] {
    enrollment::EnrollRequest req;
    req.token = request->token();
    req.csr_pem = request->csr_pem();
    req.fqdn = request->facts().fqdn();
    req.platform = request->facts().platform().substr(0, 64);
    req.agent_version = request->facts().agent_version().substr(0, 64);
    req.agent_id = request->agent_id();
    auto result = deps_.enrollment.Enroll(req);
    if (!result.ok()) {
      common::LogWarning("enrollment from ", peer, " refused: ", result.status().message());
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    response->set_agent_id(result->agent_id);
    response->set_identity_chain_pem(result->identity_chain_pem);
    response->set_ca_bundle_pem(result->ca_bundle_pem);
    *response->mutable_identity_not_after() = google::protobuf::util::TimeUtil::SecondsToTimestamp(
        absl::ToUnixSeconds(result->identity_not_after));
    reactor->Finish(grpc::Status::OK);
  });
  if (!posted) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* AgentGatewayService::RenewIdentity(
    grpc::CallbackServerContext* context, const certfleet::v1::RenewIdentityRequest* request,
    certfleet::v1::RenewIdentityResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto peer = PeerIdentityOf(*context);
  if (!peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer.status()));
    return reactor;
  }
  if (peer->kind != common::model::PeerIdentity::Kind::kAgent) {
    reactor->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 "only an agent identity may renew itself"));
    return reactor;
  }
  bool posted = deps_.executor.Post([this, reactor, request, response, agent_id = peer->name] {
    auto result = deps_.enrollment.RenewIdentity(agent_id, request->csr_pem());
    if (!result.ok()) {
      common::LogWarning("identity renewal of agent ", agent_id,
                         " refused: ", result.status().message());
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    response->set_identity_chain_pem(result->identity_chain_pem);
    response->set_ca_bundle_pem(result->ca_bundle_pem);
    *response->mutable_not_after() = google::protobuf::util::TimeUtil::SecondsToTimestamp(
        absl::ToUnixSeconds(result->identity_not_after));
    reactor->Finish(grpc::Status::OK);
  });
  if (!posted) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
  }
  return reactor;
}

grpc::ServerBidiReactor<AgentMessage, ControllerMessage>* AgentGatewayService::Connect(
    grpc::CallbackServerContext* context) {
  return new ConnectReactor(context, deps_, options_);
}

}  // namespace certfleet::controller::rpc
