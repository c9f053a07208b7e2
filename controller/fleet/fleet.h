#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/time/clock.h"
#include "controller/fleet/agent_channel.h"
#include "controller/store/store.h"

namespace certfleet::controller::fleet {

// One inventory message of an agent, converted from the wire.
struct InventoryReport {
  uint64_t generation = 0;
  bool full = false;
  uint64_t base_generation = 0;
  std::vector<store::CertificateRecord> certificates;
  std::vector<std::string> removed;
  store::BindingRecord binding;
};

struct InventoryOutcome {
  uint64_t generation = 0;
  // The delta did not apply (its base is not what the controller holds): the agent must send
  // a full inventory.
  bool resync = false;
};

// The connected agents and what they report.
//
// Thread-safe. Attach/Detach/IsConnected never block on I/O (safe on gRPC threads);
// RecordHello and ApplyInventory write the store (call them from an executor).
class Fleet {
 public:
  Fleet(store::Store& store, common::Clock& clock) : store_(store), clock_(clock) {}

  // Registers a live stream of `agent_id`. A previous stream of the same agent is closed
  // (Aborted; called without the fleet's lock held). Returns the session number to pass to
  // Detach.
  uint64_t Attach(absl::string_view agent_id, std::shared_ptr<AgentChannel> channel);
  // Unregisters session `session` of `agent_id`; a newer session of the agent is untouched.
  void Detach(absl::string_view agent_id, uint64_t session);

  // Closes every attached stream (Unavailable; controller shutdown). Sessions detach as they
  // end.
  void CloseAll();

  bool IsConnected(absl::string_view agent_id) const;
  // The live stream of `agent_id`, or null when it is not connected.
  std::shared_ptr<AgentChannel> ChannelOf(absl::string_view agent_id) const;
  size_t ConnectedCount() const;

  // NotFound when the agent is not enrolled (e.g. the state directory was reset).
  absl::Status RecordHello(absl::string_view agent_id, absl::string_view platform,
                           absl::string_view version);

  // Stores a full inventory, or applies a delta; a delta whose base is not the stored
  // generation yields resync = true and changes nothing. InvalidArgument for rows of another
  // agent; NotFound for an unknown agent.
  absl::StatusOr<InventoryOutcome> ApplyInventory(absl::string_view agent_id,
                                                  InventoryReport report);

 private:
  struct Session {
    uint64_t id;
    std::shared_ptr<AgentChannel> channel;
  };

  store::Store& store_;
  common::Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace certfleet::controller::fleet
