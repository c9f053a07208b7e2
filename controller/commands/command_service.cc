#include "controller/commands/command_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/encoding.h"
#include "common/logging/log.h"
#include "common/model/certificate.h"
#include "common/status/status_macros.h"

namespace certfleet::controller::commands {
namespace {

using common::model::CommandState;

// Checks and normalizes (thumbprints to uppercase) a payload.
absl::Status Validate(common::model::CommandPayload& payload) {
  constexpr size_t kMaxData = 1 << 20;
  auto thumb = [](std::string& t, absl::string_view kind) -> absl::Status {
    if (!common::model::IsThumbprint(t)) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, ": '", t.substr(0, 64),
                       "' is not a thumbprint (40 hex digits, as inspect and "
                       "certs list print it)"));
    }
    absl::AsciiStrToUpper(&t);
    return absl::OkStatus();
  };
  if (auto* p = std::get_if<common::model::ImportPayload>(&payload)) {
    if (p->data.empty() || p->data.size() > kMaxData) {
      return absl::InvalidArgumentError("import: the file must be 1 byte to 1 MiB");
    }
  } else if (auto* p = std::get_if<common::model::TrustPayload>(&payload)) {
    if (p->data.empty() || p->data.size() > kMaxData) {
      return absl::InvalidArgumentError("trust: the file must be 1 byte to 1 MiB");
    }
  } else if (auto* p = std::get_if<common::model::RepairPayload>(&payload)) {
    return thumb(p->thumbprint, "repair");
  } else if (auto* p = std::get_if<common::model::RemovePayload>(&payload)) {
    return thumb(p->thumbprint, "remove");
  } else if (auto* p = std::get_if<common::model::RebindPayload>(&payload)) {
    if (p->verify_timeout < absl::Seconds(1) || p->verify_timeout > absl::Hours(1)) {
      return absl::InvalidArgumentError("rebind: --verify-timeout must be 1s to 1h");
    }
    return thumb(p->thumbprint, "rebind");
  } else if (auto* p = std::get_if<common::model::RenewPayload>(&payload)) {
    return common::model::ValidateProfile(p->profile);
  } else if (auto* p = std::get_if<common::model::InstallPayload>(&payload)) {
    if (p->chain_pem.empty() || p->chain_pem.size() > kMaxData) {
      return absl::InvalidArgumentError("install: the chain must be 1 byte to 1 MiB");
    }
    if (p->verify_timeout < absl::Seconds(1) || p->verify_timeout > absl::Hours(1)) {
      return absl::InvalidArgumentError("install: verify timeout must be 1s to 1h");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CommandService::ResolveAgent(absl::string_view agent) {
  auto a = store_.GetAgent(agent);
  if (a.status().code() == absl::StatusCode::kNotFound) a = store_.FindAgentByFqdn(agent);
  if (!a.ok()) {
    if (a.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("no agent with id or FQDN '", agent, "'"));
    }
    return a.status();
  }
  return a->id;
}

void CommandService::Send(const store::CommandRecord& record, fleet::AgentChannel& channel) {
  absl::Status s = store_.MarkCommandSent(record.command.id, clock_.Now());
  if (!s.ok()) {
    // Final in the meantime (e.g. expired): nothing to send.
    if (s.code() != absl::StatusCode::kFailedPrecondition) {
      common::LogWarning("command ", record.command.id, ": ", s.ToString());
    }
    return;
  }
  channel.SendCommand(record.command);
  if (record.cancel_requested) channel.SendCancel(record.command.id);
}

absl::StatusOr<store::CommandRecord> CommandService::Create(const CreateRequest& request) {
  if (request.timeout <= absl::ZeroDuration() || request.timeout > kMaxTimeout) {
    return absl::InvalidArgumentError("command timeout must be more than 0 and at most 168h");
  }
  store::CommandRecord record;
  record.command.payload = request.payload;
  CF_RETURN_IF_ERROR(Validate(record.command.payload));
  CF_ASSIGN_OR_RETURN(record.command.agent_id, ResolveAgent(request.agent));
  const absl::Time now = clock_.Now();
  record.command.id = request.id.empty()
                          ? absl::StrCat("cmd-", absl::AsciiStrToLower(common::crypto::HexUpper(
                                                     common::crypto::RandomBytes(12))))
                          : request.id;
  record.command.deadline = now + request.timeout;
  record.created_by = request.created_by;
  record.created_at = now;
  if (absl::Status s = store_.CreateCommand(record); !s.ok()) {
    if (s.code() == absl::StatusCode::kAlreadyExists && !request.id.empty()) {
      return store_.GetCommand(request.id);  // created before a crash: the same command
    }
    return common::Annotate(s, "storing the command");
  }
  common::LogInfo("command ", record.command.id, " (",
                  common::model::CommandKindName(common::model::KindOf(record.command.payload)),
                  ") for agent ", record.command.agent_id, " created by ", request.created_by);
  if (auto channel = fleet_.ChannelOf(record.command.agent_id)) Send(record, *channel);
  return store_.GetCommand(record.command.id);
}

absl::StatusOr<store::CommandRecord> CommandService::Get(absl::string_view id) {
  return store_.GetCommand(id);
}

absl::StatusOr<std::vector<store::CommandRecord>> CommandService::List(
    absl::string_view agent, std::optional<CommandState> state, size_t limit) {
  store::CommandFilter filter;
  if (!agent.empty()) {
    CF_ASSIGN_OR_RETURN(std::string id, ResolveAgent(agent));
    filter.agent_id = id;
  }
  filter.state = state;
  filter.limit = limit == 0 ? 1000 : limit;
  return store_.ListCommands(filter);
}

absl::StatusOr<store::CommandRecord> CommandService::Cancel(absl::string_view id) {
  CF_ASSIGN_OR_RETURN(store::CommandRecord record, store_.CancelCommand(id, clock_.Now()));
  NotifyFinal(record);
  if (!common::model::IsFinal(record.state)) {
    if (auto channel = fleet_.ChannelOf(record.command.agent_id)) {
      channel->SendCancel(record.command.id);
    }
  }
  return record;
}

absl::Status CommandService::OnAgentAttached(absl::string_view agent_id) {
  CF_ASSIGN_OR_RETURN(std::vector<store::CommandRecord> pending, store_.PendingCommands(agent_id));
  if (pending.empty()) return absl::OkStatus();
  auto channel = fleet_.ChannelOf(agent_id);
  if (!channel) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  for (const auto& record : pending) {
    if (record.command.deadline < now && record.state != CommandState::kRunning) continue;
    Send(record, *channel);
  }
  return absl::OkStatus();
}

absl::Status CommandService::OnCommandRunning(absl::string_view agent_id, absl::string_view id) {
  auto record = store_.GetCommand(id);
  if (!record.ok()) {
    if (record.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
    return record.status();
  }
  if (record->command.agent_id != agent_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("command ", id, " does not belong to agent ", agent_id));
  }
  absl::Status s = store_.MarkCommandRunning(id, clock_.Now());
  if (s.code() == absl::StatusCode::kFailedPrecondition) return absl::OkStatus();  // final
  return s;
}

absl::Status CommandService::OnCommandDone(absl::string_view agent_id, absl::string_view id,
                                           const common::model::CommandOutcome& outcome) {
  auto record = store_.GetCommand(id);
  if (record.ok() && record->command.agent_id != agent_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("command ", id, " does not belong to agent ", agent_id));
  }
  if (record.ok()) {
    const bool was_final = common::model::IsFinal(record->state);
    CF_ASSIGN_OR_RETURN(store::CommandRecord stored,
                        store_.FinishCommand(id, outcome, clock_.Now()));
    if (!was_final) {
      common::LogInfo("command ", id, " on agent ", agent_id, ": ",
                      common::model::CommandStateName(stored.state),
                      outcome.error.empty() ? "" : absl::StrCat(" (", outcome.error, ")"));
      NotifyFinal(stored);
    }
  } else if (record.status().code() != absl::StatusCode::kNotFound) {
    return record.status();
  }
  if (auto channel = fleet_.ChannelOf(agent_id)) channel->SendCommandAck(id);
  return absl::OkStatus();
}

absl::StatusOr<size_t> CommandService::ExpireDue() {
  CF_ASSIGN_OR_RETURN(std::vector<store::CommandRecord> expired,
                      store_.ExpireCommands(clock_.Now(), kRunningGrace));
  for (const auto& r : expired) {
    common::LogInfo("command ", r.command.id, " for agent ", r.command.agent_id,
                    " expired before it finished");
    NotifyFinal(r);
  }
  return expired.size();
}

}  // namespace certfleet::controller::commands
