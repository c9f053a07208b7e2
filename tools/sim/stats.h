#pragma once

// What certfleet-sim measures, and the report it prints and writes.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model/command.h"

namespace certfleet::sim {

// Latency percentiles of one command kind, receive -> final outcome.
struct LatencySummary {
  int64_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Counts per command kind.
struct CommandCounts {
  int64_t received = 0;  // deliveries, re-deliveries of a command in flight excluded
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  int64_t expired = 0;
  LatencySummary latency;
};

// The run's figures (see Stats). Times are seconds since the first agent was launched.
struct Report {
  std::string scenario;
  std::string end_reason;  // "all connected", "all renewed", "duration", "signal"
  int64_t agents_requested = 0;
  int64_t enrolled_cached = 0;
  int64_t enrolled_new = 0;
  std::map<std::string, int64_t> enroll_errors;  // by status code name
  int64_t launched = 0;                          // agents with an identity and a host
  int64_t connected_ever = 0;                    // welcomed at least once
  int64_t connected_at_end = 0;
  std::optional<double> first_connected_s;
  std::optional<double> all_connected_s;
  std::map<std::string, int64_t> connect_errors;  // streams that ended before Welcome, by code
  std::map<std::string, int64_t> disconnects;     // streams that ended after Welcome, by code
  int64_t reconnects = 0;
  int64_t renewals_completed = 0;                 // agents that completed renew + install + rebind
  std::map<std::string, CommandCounts> commands;  // by kind name
  bool key_pool = false;
  int key_pool_size = 0;
  double run_s = 0;         // launch to end
  double enroll_s = 0;      // enrollment phase
  int64_t rss_peak_kb = 0;  // VmHWM
  double cpu_user_s = 0;
  double cpu_system_s = 0;
};

// One line for stdout: "certfleet-sim: agents=... connected=... ...".
std::string SummaryLine(const Report& report);
// The report as a JSON object (pretty-printed, newline-terminated).
std::string ReportJson(const Report& report);

// VmHWM of this process in KiB (0 when /proc/self/status cannot be read), and user and system
// CPU seconds so far.
int64_t PeakRssKb();
void CpuSeconds(double* user, double* system);

// Counters shared by every simulated agent. Thread-safe; every method is short.
class Stats {
 public:
  // `expected`: how many agents the run launches.
  explicit Stats(int64_t expected) : expected_(expected) {}

  // The time the report's times count from (the launch of the first agent).
  void SetLaunchStart(absl::Time start);

  void ConnectLaunched();
  // The stream was welcomed; `first` when this agent was never welcomed before.
  void Connected(absl::Time at, bool first);
  // A welcomed stream ended with `code`; `counted`: false when the simulator itself ended it
  // (it then only stops counting as connected).
  void Disconnected(absl::StatusCode code, bool counted);
  // A stream ended before the Welcome with `code` (TLS handshake refused, unreachable, ...).
  void ConnectFailed(absl::StatusCode code);
  void Reconnect();
  void CommandReceived(common::model::CommandKind kind);
  void CommandFinished(common::model::CommandKind kind, common::model::CommandState state,
                       absl::Duration latency);
  void RenewalCompleted();

  int64_t launched() const;
  int64_t connected_ever() const;
  int64_t connected_now() const;
  int64_t renewals_completed() const;
  // When connected_ever reached `expected`; nullopt before.
  std::optional<absl::Time> all_connected_at() const;
  // When an agent was last welcomed for the first time; nullopt before the first.
  std::optional<absl::Time> last_first_connect_at() const;

  // Adds the counters to `report` (launch-relative times, percentiles).
  void Fill(Report& report) const;

 private:
  const int64_t expected_;
  mutable absl::Mutex mu_;
  absl::Time launch_start_ ABSL_GUARDED_BY(mu_);
  int64_t launched_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t connected_ever_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t connected_now_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> first_connected_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> all_connected_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> last_first_connect_ ABSL_GUARDED_BY(mu_);
  std::map<absl::StatusCode, int64_t> connect_errors_ ABSL_GUARDED_BY(mu_);
  std::map<absl::StatusCode, int64_t> disconnects_ ABSL_GUARDED_BY(mu_);
  int64_t reconnects_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t renewals_completed_ ABSL_GUARDED_BY(mu_) = 0;
  struct KindCounts {
    CommandCounts counts;
    std::vector<double> latencies_ms;
  };
  std::map<common::model::CommandKind, KindCounts> commands_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certfleet::sim
