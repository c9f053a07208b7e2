#include "agent/rpc/controller_client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/rpc/controller_pin.h"
#include "agent/rpc/inventory_convert.h"
#include "common/crypto/csr.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/logging/log.h"
#include "common/model/join_token.h"
#include "common/rpc/command_convert.h"
#include "common/rpc/grpc_status.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace certfleet::agent::rpc {
namespace {

using certfleet::v1::AgentMessage;
using certfleet::v1::ControllerMessage;

grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Our own backoff decides when to dial again.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return args;
}

void SetTimeout(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

// A new P-256 key and a CSR for it with CN = fqdn (PEM).
absl::StatusOr<std::pair<common::crypto::EvpPkeyPtr, std::string>> NewKeyAndCsr(
    const std::string& fqdn) {
  CF_ASSIGN_OR_RETURN(auto key, common::crypto::GenerateEcKey());
  common::crypto::CsrOptions csr_options;
  csr_options.subject_cn = fqdn;
  CF_ASSIGN_OR_RETURN(auto csr, common::crypto::BuildCsr(key.get(), csr_options));
  return std::make_pair(std::move(key), common::crypto::CsrToPem(csr.get()));
}

// DataLoss unless the leaf of `chain_pem` certifies `key`.
absl::Status CheckChainIsForKey(const std::string& chain_pem, EVP_PKEY* key) {
  auto chain = common::crypto::CertificatesFromPem(chain_pem);
  if (!chain.ok() || chain->empty() ||
      !common::crypto::KeyMatchesCertificate(key, chain->front().get())) {
    return absl::DataLossError("the controller's identity certificate is not for the key sent");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Credentials> Enroll(const EnrollParams& params) {
  CF_ASSIGN_OR_RETURN(common::model::JoinToken token, common::model::ParseJoinToken(params.token));
  CF_ASSIGN_OR_RETURN(std::string ca_pem,
                      FetchPinnedCaPem(params.controller, token.ca_pin, params.timeout));
  CF_ASSIGN_OR_RETURN(auto key_and_csr, NewKeyAndCsr(params.fqdn));
  auto& [key, csr_pem] = key_and_csr;

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  auto channel =
      grpc::CreateCustomChannel(params.controller, grpc::SslCredentials(ssl), ChannelArgs());
  auto stub = certfleet::v1::AgentGateway::NewStub(channel);
  grpc::ClientContext ctx;
  SetTimeout(&ctx, params.timeout);
  certfleet::v1::EnrollRequest req;
  req.set_token(params.token);
  req.set_csr_pem(csr_pem);
  req.set_agent_id(params.agent_id);
  req.mutable_facts()->set_fqdn(params.fqdn);
  req.mutable_facts()->set_platform(params.platform);
  req.mutable_facts()->set_agent_version(params.version);
  certfleet::v1::EnrollResponse resp;
  grpc::Status s = stub->Enroll(&ctx, req, &resp);
  if (!s.ok()) {
    return common::Annotate(common::rpc::FromGrpcStatus(s), "enrollment refused");
  }
  if (resp.agent_id().empty() || resp.identity_chain_pem().empty()) {
    return absl::DataLossError("the controller's enrollment answer is incomplete");
  }
  if (!params.agent_id.empty() && resp.agent_id() != params.agent_id) {
    return absl::DataLossError("the controller re-enrolled another agent than this one");
  }
  CF_RETURN_IF_ERROR(CheckChainIsForKey(resp.identity_chain_pem(), key.get()));
  Credentials creds;
  creds.agent_id = resp.agent_id();
  creds.identity_pem = resp.identity_chain_pem();
  creds.key_pem = common::crypto::PrivateKeyToPem(key.get());
  // Trust exactly the root the token pinned.
  creds.ca_pem = ca_pem;
  return creds;
}

absl::StatusOr<Credentials> RenewIdentity(const Credentials& current, const RenewParams& params) {
  CF_ASSIGN_OR_RETURN(auto key_and_csr, NewKeyAndCsr(params.fqdn));
  auto& [key, csr_pem] = key_and_csr;
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = current.ca_pem;
  ssl.pem_private_key = current.key_pem;
  ssl.pem_cert_chain = current.identity_pem;
  auto channel =
      grpc::CreateCustomChannel(params.controller, grpc::SslCredentials(ssl), ChannelArgs());
  auto stub = certfleet::v1::AgentGateway::NewStub(channel);
  grpc::ClientContext ctx;
  SetTimeout(&ctx, params.timeout);
  certfleet::v1::RenewIdentityRequest req;
  req.set_csr_pem(csr_pem);
  certfleet::v1::RenewIdentityResponse resp;
  grpc::Status s = stub->RenewIdentity(&ctx, req, &resp);
  if (!s.ok()) {
    return common::Annotate(common::rpc::FromGrpcStatus(s), "identity renewal refused");
  }
  if (resp.identity_chain_pem().empty()) {
    return absl::DataLossError("the controller's identity renewal answer is incomplete");
  }
  CF_RETURN_IF_ERROR(CheckChainIsForKey(resp.identity_chain_pem(), key.get()));
  Credentials renewed;
  renewed.agent_id = current.agent_id;
  // The root stays the one the join token pinned: trust changes only through a token.
  renewed.ca_pem = current.ca_pem;
  renewed.identity_pem = resp.identity_chain_pem();
  renewed.key_pem = common::crypto::PrivateKeyToPem(key.get());
  return renewed;
}

Session::Session(const Credentials& credentials, SessionOptions options,
                 std::function<absl::StatusOr<inventory::HostInventory>()> scan,
                 CommandHandler* commands, SessionTask* task)
    : credentials_(credentials),
      options_(std::move(options)),
      scan_(std::move(scan)),
      commands_(commands),
      task_(task) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = credentials_.ca_pem;
  ssl.pem_private_key = credentials_.key_pem;
  ssl.pem_cert_chain = credentials_.identity_pem;
  channel_ =
      grpc::CreateCustomChannel(options_.controller, grpc::SslCredentials(ssl), ChannelArgs());
  stub_ = certfleet::v1::AgentGateway::NewStub(channel_);
}

void Session::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  if (context_) context_->TryCancel();
}

bool Session::Write(Stream* stream, const AgentMessage& message) {
  absl::MutexLock lock(&write_mu_);
  return stream->Write(message);
}

void Session::SendUnreported(Stream* stream) {
  if (!commands_) return;
  for (const auto& [id, outcome] : commands_->Unreported()) {
    AgentMessage m;
    common::rpc::ToProto(id, outcome, m.mutable_command_update());
    if (!Write(stream, m)) return;
  }
}

void Session::ReadLoop(Stream* stream) {
  ControllerMessage msg;
  while (stream->Read(&msg)) {
    switch (msg.payload_case()) {
      case ControllerMessage::kWelcome: {
        {
          absl::MutexLock lock(&mu_);
          welcomed_ = true;
          if (msg.welcome().has_scan_interval()) {
            controller_interval_ =
                absl::Milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(
                    msg.welcome().scan_interval()));
          }
        }
        // Outcomes finished while disconnected (or not acknowledged) go first.
        SendUnreported(stream);
        break;
      }
      case ControllerMessage::kInventoryAck:
        if (msg.inventory_ack().resync()) {
          absl::MutexLock lock(&mu_);
          resync_ = true;
        }
        break;
      case ControllerMessage::kCommand: {
        auto command = common::rpc::FromProto(msg.command());
        if (!command.ok()) {
          common::LogWarning("refusing a malformed command: ", command.status().ToString());
          if (!msg.command().id().empty() && msg.command().id().size() <= 128) {
            common::model::CommandOutcome bad;
            bad.state = common::model::CommandState::kFailed;
            bad.code = command.status().code();
            bad.error = std::string(command.status().message());
            AgentMessage m;
            common::rpc::ToProto(msg.command().id(), bad, m.mutable_command_update());
            Write(stream, m);
          }
          break;
        }
        if (!commands_) {
          common::model::CommandOutcome refused;
          refused.state = common::model::CommandState::kFailed;
          refused.code = absl::StatusCode::kFailedPrecondition;
          refused.error = "this agent does not run commands";
          AgentMessage m;
          common::rpc::ToProto(command->id, refused, m.mutable_command_update());
          Write(stream, m);
          break;
        }
        commands_->Submit(std::move(*command));
        break;
      }
      case ControllerMessage::kCancel:
        if (commands_) commands_->Cancel(msg.cancel().command_id());
        break;
      case ControllerMessage::kCommandAck:
        if (commands_) commands_->Acknowledged(msg.command_ack().command_id());
        break;
      case ControllerMessage::PAYLOAD_NOT_SET:
        break;
    }
  }
  absl::MutexLock lock(&mu_);
  read_done_ = true;
}

absl::Status Session::Run(bool* welcomed) {
  *welcomed = false;
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return absl::OkStatus();
    context_ = &ctx;
    read_done_ = false;
    welcomed_ = false;
    resync_ = false;
    scan_now_ = false;
  }
  auto stream = stub_->Connect(&ctx);
  Stream* raw = stream.get();
  if (commands_) {
    commands_->SetReporter(
        [this, raw](const std::string& id, const common::model::CommandOutcome* outcome) {
          AgentMessage m;
          if (outcome) {
            common::rpc::ToProto(id, *outcome, m.mutable_command_update());
          } else {
            m.mutable_command_update()->set_command_id(id);
            m.mutable_command_update()->set_phase(certfleet::v1::CommandUpdate::RUNNING);
          }
          Write(raw, m);
          if (outcome) {
            // The host changed (or was asked to be scanned): report it now.
            absl::MutexLock lock(&mu_);
            scan_now_ = true;
          }
        });
  }
  std::thread reader([this, raw] { ReadLoop(raw); });

  AgentMessage hello;
  hello.mutable_hello()->set_agent_id(credentials_.agent_id);
  hello.mutable_hello()->set_version(options_.version);
  hello.mutable_hello()->set_platform(options_.platform);
  hello.mutable_hello()->add_capabilities("inventory");
  hello.mutable_hello()->mutable_facts()->set_fqdn(options_.fqdn);
  hello.mutable_hello()->mutable_facts()->set_platform(options_.platform);
  hello.mutable_hello()->mutable_facts()->set_agent_version(options_.version);
  bool ok = Write(raw, hello);

  InventoryTracker tracker;
  bool ended_by_task = false;
  // The scan loop keeps its own schedule on the real clock, as its waits do; the task keeps its
  // own (TimeUntilDue).
  absl::Time next_scan = absl::InfinitePast();
  while (ok) {
    bool force_full = false;
    bool scan_due = false;
    {
      absl::MutexLock lock(&mu_);
      if (stop_ || read_done_) break;
      force_full = resync_;
      scan_due = resync_ || scan_now_ || absl::Now() >= next_scan;
      resync_ = false;
      scan_now_ = false;
    }
    if (scan_due) {
      auto scan = scan_();
      if (scan.ok()) {
        auto msg = tracker.Next(*scan, force_full);
        if (msg) {
          AgentMessage out;
          *out.mutable_inventory() = std::move(*msg);
          ok = Write(raw, out);
          if (!ok) break;
        }
      } else {
        common::LogWarning("host scan failed: ", scan.status().ToString());
      }
      absl::MutexLock lock(&mu_);
      absl::Duration interval = options_.scan_interval;
      if (!options_.scan_interval_fixed && controller_interval_ > absl::ZeroDuration()) {
        interval = controller_interval_;
      }
      next_scan = absl::Now() + interval;
    }
    if (task_ != nullptr && task_->TimeUntilDue() <= absl::ZeroDuration() && task_->RunDue()) {
      ended_by_task = true;
      break;
    }
    absl::Duration wait = next_scan - absl::Now();
    if (task_ != nullptr) wait = std::min(wait, task_->TimeUntilDue());
    absl::MutexLock lock(&mu_);
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || read_done_ || resync_ || scan_now_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&wake), std::max(wait, absl::ZeroDuration()));
  }
  if (commands_) commands_->SetReporter(nullptr);
  {
    absl::MutexLock lock(&write_mu_);
    stream->WritesDone();
  }
  {
    absl::MutexLock lock(&mu_);
    if (!read_done_) ctx.TryCancel();  // unblocks the reader when the stream is still open
  }
  reader.join();
  grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  *welcomed = welcomed_;
  if (stop_ || ended_by_task) return absl::OkStatus();
  if (status.ok()) return absl::UnavailableError("the controller closed the stream");
  return common::rpc::FromGrpcStatus(status);
}

}  // namespace certfleet::agent::rpc
