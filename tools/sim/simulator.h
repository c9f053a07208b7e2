#pragma once

// certfleet-sim's run: enroll (or load) N identities, seed N in-memory hosts, connect N agents
// at the requested rate, play the scenario, stop, report. See main.cc for the command line.

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "tools/sim/stats.h"

namespace certfleet::sim {

enum class Scenario {
  kConnect,   // connect every agent, report the time until all are connected, exit
  kIdle,      // stay connected for the duration
  kCommands,  // stay connected and carry out what the controller sends, for the duration
  kRenew,     // as kCommands; exit once every agent has completed renew + install + rebind
};

// "connect", "idle", "commands", "renew".
absl::string_view ScenarioName(Scenario scenario);
std::optional<Scenario> ScenarioFromName(absl::string_view name);

struct SimOptions {
  // HOST:PORT of the controller: enrollment, the admin API and (without `sources`) the streams.
  std::string controller;
  // The controller's STATE_DIR/admin (ca.pem, client.pem, client.key).
  std::string admin_dir;
  int agents = 0;
  // Certificates in each host's My store (the first bound).
  int certs_per_host = 1;
  // identities.json (the identity cache) and journals/. Empty: a temporary directory, removed
  // at the end, and no cache.
  std::string state_dir;
  // IPv4 addresses the streams go to, agent i to sources[i % size]; empty: the controller's
  // host. Each must reach the controller (it listens on 0.0.0.0 or on each of them).
  std::vector<std::string> sources;
  // The name the controller's certificate is checked against; empty: the controller's host.
  std::string server_name;
  // First connections per second; 0: all at once.
  double connect_rate = 0;
  // The run ends this long after the last agent connected for the first time (or was launched,
  // when that is later), unless the scenario's goal ends it first: a run whose remaining agents
  // cannot connect ends --duration after the last one that could.
  absl::Duration duration = absl::Seconds(60);
  Scenario scenario = Scenario::kConnect;
  // Pre-generated RSA keys for renew commands; 0: a new key per renew.
  int key_pool = 0;
  // Executor threads for commands, scans and journals.
  int threads = 2;
  // Enrollments in flight at once.
  int enroll_parallelism = 8;
  // Heartbeat interval unless the controller's Welcome sets a scan interval.
  absl::Duration heartbeat_interval = absl::Seconds(60);
  absl::Duration max_backoff = absl::Seconds(30);
  std::string version = CERTFLEET_VERSION;
};

// Raises this process's RLIMIT_NOFILE soft limit to its hard limit. FailedPrecondition with
// advice when `agents` connections plus a margin need more than the hard limit allows.
absl::Status EnsureFileDescriptors(int agents);

// Thread-safe: Stop may be called from any thread (a signal handler thread) at any time.
class Simulator {
 public:
  Simulator(SimOptions options, common::Clock& clock)
      : options_(std::move(options)), clock_(clock) {}

  // Runs the scenario to its end (or Stop) and returns the report; per-agent failures (an
  // enrollment refused, a connection that never succeeded) are in the report. Errors:
  // InvalidArgument for bad options; the admin API's status when the admin credentials do not
  // work; DataLoss for a corrupt identity cache; the file system's errors for the state
  // directory; Internal when a simulated host cannot be seeded.
  absl::StatusOr<Report> Run();

  // Ends the run early (end reason "signal"); Run then stops the agents and reports.
  void Stop();

 private:
  bool Stopped();

  const SimOptions options_;
  common::Clock& clock_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace certfleet::sim
