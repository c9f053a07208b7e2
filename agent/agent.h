#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/platform/host_platform.h"
#include "agent/rpc/controller_client.h"
#include "common/time/clock.h"

namespace certfleet::agent {

struct AgentOptions {
  std::string controller;  // HOST:PORT
  std::string state_dir;
  std::string token;                            // needed only until enrolled; a secret
  std::optional<absl::Duration> scan_interval;  // fixed by the operator; else the controller's
  absl::Duration warn_within = absl::Hours(24 * 30);
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  std::string version = CERTFLEET_VERSION;
};

struct AgentDeps {
  platform::HostPlatform& host;
  common::Clock& clock;
};

// The agent: enrolls once (identity kept in the state directory: identity.key 0600,
// identity.pem, ca.pem, agent_id), then keeps one Connect stream to the controller, reconnecting
// with exponential backoff and full jitter.
//
// Thread-safe: Stop may be called from any thread (e.g. a signal handler thread).
class Agent {
 public:
  Agent(AgentOptions options, AgentDeps deps);

  // Runs until Stop. Returns OK after Stop; FailedPrecondition when not enrolled and no token
  // was given; the enrollment error when the controller refuses the token (retrying cannot
  // help); DataLoss when the stored identity is unreadable.
  absl::Status Run();
  void Stop();

 private:
  absl::StatusOr<rpc::Credentials> LoadOrEnroll();
  // Sleeps `d` unless Stop comes first; false when stopped.
  bool SleepUnlessStopped(absl::Duration d);

  AgentOptions options_;
  AgentDeps deps_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  rpc::Session* session_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace certfleet::agent
