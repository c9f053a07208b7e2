#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/model/command.h"
#include "common/time/clock.h"
#include "controller/fleet/fleet.h"
#include "controller/store/store.h"

namespace certfleet::controller::commands {

struct CreateRequest {
  // Empty: the service picks a random id. Set by automatic work (a renewal job) so that
  // creating the same step twice after a crash yields one command (AlreadyExists -> the stored
  // one is returned).
  std::string id;
  std::string agent;  // agent id or FQDN
  common::model::CommandPayload payload;
  absl::Duration timeout = absl::Hours(1);  // deadline = now + timeout
  std::string created_by;
};

// Commands for agents, delivered at least once with exactly-once effect (ARCHITECTURE.md,
// "Delivery semantics"): persisted before they are sent, (re)sent whenever the agent's stream
// is attached, finished from the agent's outcome, acknowledged so the agent stops re-sending.
//
// Thread-safe. Every method writes or reads the store: call from an executor.
class CommandService {
 public:
  static constexpr absl::Duration kMaxTimeout = absl::Hours(24 * 7);
  // How long past its deadline a running command may still report before it is expired.
  static constexpr absl::Duration kRunningGrace = absl::Minutes(65);

  CommandService(store::Store& store, fleet::Fleet& fleet, common::Clock& clock)
      : store_(store), fleet_(fleet), clock_(clock) {}

  // Validates and persists a command, then sends it if the agent is connected. NotFound for an
  // unknown agent; InvalidArgument for a malformed payload (thumbprint not 40 hex digits, empty
  // data, timeout outside (0, 7 days], verify timeout outside 1 s..1 h).
  absl::StatusOr<store::CommandRecord> Create(const CreateRequest& request);
  absl::StatusOr<store::CommandRecord> Get(absl::string_view id);
  // `agent` empty = all agents; NotFound for an unknown agent.
  absl::StatusOr<std::vector<store::CommandRecord>> List(
      absl::string_view agent, std::optional<common::model::CommandState> state, size_t limit);
  // Cancels a queued command at once; asks the agent about a sent or running one (it answers
  // cancelled if it had not started). FailedPrecondition when already final.
  absl::StatusOr<store::CommandRecord> Cancel(absl::string_view id);

  // The agent's stream is attached: (re)send every command of it not yet final.
  absl::Status OnAgentAttached(absl::string_view agent_id);
  // The agent reports it started `id`. PermissionDenied when `id` belongs to another agent.
  absl::Status OnCommandRunning(absl::string_view agent_id, absl::string_view id);
  // The agent reports the outcome of `id`: stored (once) and acknowledged. PermissionDenied
  // when `id` belongs to another agent; an unknown id is acknowledged too (the controller's
  // state was reset), so the agent stops re-sending it.
  absl::Status OnCommandDone(absl::string_view agent_id, absl::string_view id,
                             const common::model::CommandOutcome& outcome);
  // Expires what is past its deadline. Returns how many commands expired.
  absl::StatusOr<size_t> ExpireDue();

  // Called (on the calling thread, after the store was updated) each time a command becomes
  // final: finished by its agent, cancelled or expired. Set once, before serving.
  using FinalListener = std::function<void(const store::CommandRecord& record)>;
  void SetFinalListener(FinalListener listener) { final_listener_ = std::move(listener); }

 private:
  absl::StatusOr<std::string> ResolveAgent(absl::string_view agent);
  void Send(const store::CommandRecord& record, fleet::AgentChannel& channel);

  void NotifyFinal(const store::CommandRecord& record) {
    if (final_listener_ && common::model::IsFinal(record.state)) final_listener_(record);
  }

  store::Store& store_;
  fleet::Fleet& fleet_;
  common::Clock& clock_;
  FinalListener final_listener_;
};

}  // namespace certfleet::controller::commands
