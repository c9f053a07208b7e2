#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/client/backoff.h"
#include "agent/commands/command_runner.h"
#include "agent/commands/key_source.h"
#include "agent/inventory/inventory.h"
#include "agent/journal/journal.h"
#include "agent/platform/memory/memory_host_platform.h"
#include "agent/rpc/inventory_convert.h"
#include "certfleet/v1/agent.grpc.pb.h"
#include "common/executor/executor.h"
#include "common/model/command.h"
#include "common/time/clock.h"
#include "tools/sim/agent_stream.h"
#include "tools/sim/identity_cache.h"
#include "tools/sim/stats.h"
#include "tools/sim/timer_queue.h"

namespace certfleet::sim {

struct SimAgentOptions {
  // The gRPC target this agent dials (its destination address, see --sources).
  std::string target;
  // The name the controller's certificate is checked against (SSL target name override); empty:
  // the target's host.
  std::string server_name;
  std::string version;
  // This agent's command journal; its directory must exist. Opened while commands are queued,
  // running or unacknowledged, closed otherwise (one SQLite file and three descriptors per open
  // journal, so thousands of idle agents hold none).
  std::string journal_path;
  // How often a welcomed stream carries a Heartbeat when the Welcome sets no scan interval.
  absl::Duration heartbeat_interval = absl::Seconds(60);
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration warn_within = absl::Hours(24 * 30);
  // A number unique in the process, set as a channel argument so that gRPC never shares a
  // connection between two agents.
  int unique_id = 0;
};

// Shared by every agent; all must outlive the agents.
struct SimAgentDeps {
  // Commands, scans and journal work; never a gRPC callback thread.
  common::Executor& executor;
  // Connects, reconnects after backoff, heartbeats.
  TimerQueue& timers;
  Stats& stats;
  common::Clock& clock;
  // Optional: renew keys from a pool (KeyPool); null: a new key per renew.
  agent::commands::KeySource* keys = nullptr;
};

// One simulated agent: an enrolled identity, a seeded in-memory host, its own gRPC channel with
// its own TCP connection and TLS session, and one Connect stream speaking the agent's protocol
// (agent/rpc/controller_client.h's Session): Hello and a full inventory on every stream, deltas
// after each command, a Heartbeat every interval, commands carried out by the real CommandRunner
// over the host and a journal, outcomes re-sent until acknowledged, reconnects with the agent's
// full-jitter backoff. No thread of its own: stream reactions run on gRPC's threads, blocking
// work on the shared executor, timed work on the shared timer queue.
//
// The host changes only through commands, so the agent scans it before the launch and after
// each command, and reuses that scan (for at most 10 minutes) for the full inventory of a new
// stream or of a resync; at each interval, where the real agent would scan and find nothing
// changed, it sends a Heartbeat.
//
// Commands of one agent run one at a time in arrival order, as do acknowledgements and re-sends
// (all of them use the journal): a per-agent strand over the shared executor.
//
// Thread-safe. Destroy only after Stop, once Finished() is true, the timer queue is shut down
// and the executor has drained.
class SimAgent final : public StreamListener {
 public:
  SimAgent(SimAgentOptions options, const SimAgentDeps& deps, SimIdentity identity,
           std::unique_ptr<agent::platform::MemoryHostPlatform> host);
  ~SimAgent() override;
  SimAgent(const SimAgent&) = delete;
  SimAgent& operator=(const SimAgent&) = delete;

  // Scans the host once, so that the first stream's inventory is ready (the simulator does it
  // for every agent before launching: the connect phase then measures connecting). Blocking:
  // call it on the executor, before Launch.
  void Prepare();
  // Creates the channel and opens the first stream. Call once, on the executor (creating a TLS
  // channel and starting its first call is CPU work); reconnects are posted there too.
  void Launch();
  // No more reconnects; the stream is cancelled. Commands queued but not started are dropped
  // (the controller sends them again to the next process).
  void Stop();
  // Stopped, the stream has ended and no strand work is queued or running.
  bool Finished() const;

  const std::string& fqdn() const { return fqdn_; }

 private:
  void Connect();
  void OnMessage(AgentStream& stream, const certfleet::v1::ControllerMessage& message) override;
  void OnDone(AgentStream& stream, const grpc::Status& status) override;

  void OnWelcome(const certfleet::v1::Welcome& welcome);
  void OnCommand(const certfleet::v1::Command& command);
  // Sends `message` on the current stream, if any.
  void Send(const certfleet::v1::AgentMessage& message);
  void SendOutcome(const std::string& id, const common::model::CommandOutcome& outcome);
  // Sends the inventory for the current stream (full when `full` or the stream has had none),
  // scanning the host unless the last scan still holds (`rescan` forces one). On the executor.
  void ScanAndSend(bool full, bool rescan);
  // A scan of the host, from last_scan_ unless `rescan` or stale.
  absl::StatusOr<agent::inventory::HostInventory> ScanLocked(bool rescan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  void Heartbeat(uint64_t epoch);

  // The strand: `work` runs on the executor after the agent's earlier work.
  void PostWork(std::function<void()> work);
  void DrainOne();
  // Strand work.
  void Execute(const common::model::Command& command);
  void ResendUnreported();
  void MarkReported(const std::string& id);
  // Opens the journal when closed. Strand only.
  absl::Status EnsureJournal();
  // Tracks renew -> install -> rebind (or an install that binds), each succeeded; the first
  // completed sequence counts in Stats::RenewalCompleted.
  void NoteSuccess(const common::model::Command& command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SimAgentOptions options_;
  const SimAgentDeps deps_;
  const std::string fqdn_;
  const std::string agent_id_;
  std::unique_ptr<agent::platform::MemoryHostPlatform> host_;

  // Launch and Connect only, which never overlap for one agent (a reconnect is scheduled once
  // the previous stream ended): the identity is dropped once the channel holds it.
  SimIdentity identity_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<certfleet::v1::AgentGateway::Stub> stub_;

  // The strand only (one strand task at a time).
  std::unique_ptr<agent::journal::Journal> journal_;
  std::unique_ptr<agent::commands::CommandRunner> runner_;

  // Serializes scans so that inventories leave in generation order.
  absl::Mutex scan_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<agent::rpc::InventoryTracker> tracker_ ABSL_GUARDED_BY(scan_mu_);
  uint64_t tracker_epoch_ ABSL_GUARDED_BY(scan_mu_) = 0;
  // The last scan, until a command may have changed the host (or it is kMaxScanAge old): the
  // host changes only through commands, and parsing every certificate again at each reconnect
  // would cost the simulator more than the connection.
  std::optional<agent::inventory::HostInventory> last_scan_ ABSL_GUARDED_BY(scan_mu_);
  absl::Time last_scan_at_ ABSL_GUARDED_BY(scan_mu_);

  mutable absl::Mutex mu_;
  std::shared_ptr<AgentStream> stream_ ABSL_GUARDED_BY(mu_);
  // Increases with every stream start and end; stale timers and scans compare it.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool ever_welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  agent::client::Backoff backoff_ ABSL_GUARDED_BY(mu_);
  // The strand's queue; `draining_` while a strand task is posted or running.
  std::deque<std::function<void()>> work_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Commands queued or running, with the time each was received.
  absl::flat_hash_map<std::string, absl::Time> in_flight_ ABSL_GUARDED_BY(mu_);
  // Cancelled before they started (handed to the runner when they run).
  absl::flat_hash_set<std::string> cancelled_ ABSL_GUARDED_BY(mu_);
  // Outcomes sent (or to be re-sent) and not yet acknowledged.
  absl::flat_hash_set<std::string> unacked_ ABSL_GUARDED_BY(mu_);
  bool renew_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool install_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool renewed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace certfleet::sim
