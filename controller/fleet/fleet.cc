#include "controller/fleet/fleet.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging/log.h"

namespace certfleet::controller::fleet {

uint64_t Fleet::Attach(absl::string_view agent_id, std::shared_ptr<AgentChannel> channel) {
  std::shared_ptr<AgentChannel> previous;
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = next_session_++;
    auto it = sessions_.find(agent_id);
    if (it != sessions_.end()) {
      previous = std::move(it->second.channel);
      it->second = Session{id, std::move(channel)};
    } else {
      sessions_.emplace(std::string(agent_id), Session{id, std::move(channel)});
    }
  }
  if (previous) {
    common::LogInfo("agent ", agent_id, " connected again; closing its previous stream");
    previous->Close(absl::AbortedError("replaced by a newer connection of the same agent"));
  }
  return id;
}

void Fleet::Detach(absl::string_view agent_id, uint64_t session) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(agent_id);
  if (it != sessions_.end() && it->second.id == session) sessions_.erase(it);
}

void Fleet::CloseAll() {
  std::vector<std::shared_ptr<AgentChannel>> channels;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, session] : sessions_) channels.push_back(session.channel);
  }
  for (auto& c : channels) c->Close(absl::UnavailableError("the controller is shutting down"));
}

bool Fleet::IsConnected(absl::string_view agent_id) const {
  absl::MutexLock lock(&mu_);
  return sessions_.find(agent_id) != sessions_.end();
}

std::shared_ptr<AgentChannel> Fleet::ChannelOf(absl::string_view agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(agent_id);
  return it == sessions_.end() ? nullptr : it->second.channel;
}

size_t Fleet::ConnectedCount() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

absl::Status Fleet::RecordHello(absl::string_view agent_id, absl::string_view platform,
                                absl::string_view version) {
  return store_.RecordAgentSeen(agent_id, platform, version, clock_.Now());
}

absl::StatusOr<InventoryOutcome> Fleet::ApplyInventory(absl::string_view agent_id,
                                                       InventoryReport report) {
  for (auto& row : report.certificates) {
    if (row.agent_id.empty()) row.agent_id = std::string(agent_id);
    if (row.agent_id != agent_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("inventory row for agent ", row.agent_id, " sent by agent ", agent_id));
    }
  }
  const absl::Time now = clock_.Now();
  if (report.full) {
    absl::Status s = store_.ReplaceInventory(agent_id, report.generation, report.certificates,
                                             report.binding, now);
    if (!s.ok()) return s;
    return InventoryOutcome{report.generation, false};
  }
  absl::Status s =
      store_.ApplyInventoryDelta(agent_id, report.base_generation, report.generation,
                                 report.certificates, report.removed, report.binding, now);
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    common::LogInfo("agent ", agent_id, " sent a delta on generation ", report.base_generation,
                    " the controller does not hold; asking for a full inventory");
    return InventoryOutcome{report.generation, true};
  }
  if (!s.ok()) return s;
  return InventoryOutcome{report.generation, false};
}

}  // namespace certfleet::controller::fleet
