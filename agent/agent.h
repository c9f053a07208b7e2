#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/client/identity_files.h"
#include "agent/client/identity_renewal.h"
#include "agent/platform/host_platform.h"
#include "agent/rpc/controller_client.h"
#include "common/time/clock.h"

namespace certfleet::agent {

struct AgentOptions {
  std::string controller;  // HOST:PORT
  std::string state_dir;
  // A join token for the first start, or a re-enrollment token (certfleetctl tokens create
  // --agent) once the identity expired; ignored while the identity is valid. A secret.
  std::string token;
  std::optional<absl::Duration> scan_interval;  // fixed by the operator; else the controller's
  absl::Duration warn_within = absl::Hours(24 * 30);
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  std::string version = CERTFLEET_VERSION;
  // When the identity is renewed, and how failed renewals are retried.
  client::IdentityRenewal::Options renewal;
  // Journaled commands reported longer ago than this are forgotten, at start and then every
  // journal_prune_interval. Must exceed every command deadline the controller sets.
  absl::Duration journal_retention = absl::Hours(24 * 30);
  absl::Duration journal_prune_interval = absl::Hours(24);
};

struct AgentDeps {
  platform::HostPlatform& host;
  common::Clock& clock;
  // Draws the jitter of reconnects and identity renewals. Used from Run's thread only.
  absl::BitGenRef random;
};

// The agent: enrolls once (identity kept in the state directory, agent/client/identity_files.h),
// then keeps one Connect stream to the controller, reconnecting with exponential backoff and
// full jitter.
//
// Identity: the agent renews its identity itself at about half its lifetime
// (client::IdentityRenewal; RenewIdentity over mutual TLS with the current identity, a new key
// made here), checked on the session's loop between scans and before each reconnect. A renewed
// key and chain replace the old ones in the state directory, then the agent ends the current
// stream and reconnects at once with the new identity, so every connection uses the newest one
// (the controller verifies a client certificate only at the handshake). A failed renewal is
// logged and retried with backoff until the identity expires. An expired identity cannot
// connect: Run then fails with FailedPrecondition telling the operator to create a
// re-enrollment token (certfleetctl tokens create --agent ID) and start the agent with --token,
// which re-enrolls the same agent id.
//
// Thread-safe: Stop may be called from any thread (e.g. a signal handler thread). Stop waits
// for a renewal call in progress (at most its 15 s timeout).
class Agent {
 public:
  Agent(AgentOptions options, AgentDeps deps);

  // Runs until Stop. Returns OK after Stop; FailedPrecondition when not enrolled and no token
  // was given, and when the identity expired (at start without a token, or while running);
  // the enrollment error when the controller refuses the token (retrying cannot help);
  // DataLoss when the stored identity is unreadable.
  absl::Status Run();
  void Stop();

 private:
  // The stored identity, enrolling or (expired identity, token given) re-enrolling first.
  absl::StatusOr<client::StoredIdentity> LoadOrEnroll();
  // Enroll with options_.token, retrying what is retryable; `agent_id` set: re-enrollment.
  absl::StatusOr<rpc::Credentials> EnrollWithToken(const std::string& agent_id);
  // Sleeps `d` unless Stop comes first; false when stopped.
  bool SleepUnlessStopped(absl::Duration d);

  AgentOptions options_;
  AgentDeps deps_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  rpc::Session* session_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace certfleet::agent
