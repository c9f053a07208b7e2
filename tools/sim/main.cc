// certfleet-sim: thousands of simulated agents in one process, each with its own identity, TLS
// connection and Connect stream, for load tests and benchmarks. Parses the command line, nothing
// else.

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "common/files/file_util.h"
#include "common/logging/log.h"
#include "common/process/signals.h"
#include "common/time/clock.h"
#include "common/time/format.h"
#include "tools/sim/flags.h"
#include "tools/sim/simulator.h"
#include "tools/sim/stats.h"

namespace {

constexpr char kDescription[] = R"(certfleet-sim: simulated certfleet agents, many in one process.

Each simulated agent has its own enrolled identity (a join token from the admin API bound to
its FQDN sim-00001.sim.certfleet.test..., then the real Enroll), its own gRPC channel with its own
TCP connection and TLS session, and its own Connect stream. Its host is an in-memory SCOM host
with a valid bound certificate, on which the agent's real command runner carries out scan,
import, repair, rebind, trust, remove, renew and install (with event 20053). No thread per
agent: streams use gRPC's callback API, commands a small shared executor.

Scenarios: connect (connect all, report the time until all are connected, exit); idle (stay
connected); commands (stay connected and carry out what the controller sends); renew (as
commands, and exit once every agent has completed renew + install + rebind). Every run ends at
the latest --duration after the last agent connected for the first time (so agents that cannot
connect end it --duration after the last one that could), then prints a summary line and, with
--report, writes a JSON report. Exit status 0; 3 when connect or renew missed its goal.

Source addresses (--sources): gRPC cannot bind a client's source address, so the agents are
spread over DESTINATION addresses instead: with --sources 127.0.0.1-127.0.0.8, agent i dials
127.0.0.(1 + i mod 8) on the controller's port. Start the controller with --listen 0.0.0.0:PORT
so that it answers on every 127.0.0.x. Each destination address has its own range of ephemeral
ports, so tens of thousands of connections do not exhaust one 4-tuple space. TLS verification
stays on: every connection checks the controller's certificate against the name given by
--server-name (default: the host of --controller, e.g. 127.0.0.1, which the controller's
certificate carries).

File descriptors: one per agent connection. The soft limit is raised to the hard limit at start;
if that is too small for --agents, the run stops with advice. The controller needs as many.

Identities are kept in --state-dir/identities.json (0600; it holds private keys), so a rerun
connects without enrolling again; a cached identity the controller no longer knows is enrolled
again.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription};
  app.set_version_flag("--version", CERTFLEET_VERSION);
  certfleet::sim::SimOptions options;
  std::string sources;
  std::string rate = "0";
  std::string duration = "60s";
  std::string heartbeat = "60s";
  std::string scenario = "connect";
  std::string report_path;
  std::string log_level = "warning";
  app.add_option("--controller", options.controller, "Controller address HOST:PORT")->required();
  app.add_option("--admin-dir", options.admin_dir,
                 "The controller's admin credentials (STATE_DIR/admin: ca.pem, client.pem, "
                 "client.key)")
      ->required();
  app.add_option("--agents", options.agents, "Number of simulated agents")
      ->required()
      ->check(CLI::Range(1, 99999));
  app.add_option("--certs-per-host", options.certs_per_host,
                 "Certificates in each host's Personal store (the first bound)")
      ->capture_default_str()
      ->check(CLI::Range(1, 50));
  app.add_option("--state-dir", options.state_dir,
                 "Keeps enrolled identities across runs (and the run's journals); default: a "
                 "temporary directory, nothing kept");
  app.add_option("--sources", sources,
                 "Destination addresses to spread agents over, e.g. 127.0.0.1-127.0.0.8 "
                 "(see above); default: the host of --controller");
  app.add_option("--server-name", options.server_name,
                 "Name the controller's certificate is verified against; default: the host of "
                 "--controller");
  app.add_option("--connect-rate", rate,
                 "First connections per second, e.g. 500/s; 0 = all at once")
      ->capture_default_str();
  app.add_option("--duration", duration,
                 "How long to stay after the last agent connected (e.g. 60s, 5m)")
      ->capture_default_str();
  app.add_option("--scenario", scenario, "connect, idle, commands or renew")
      ->capture_default_str()
      ->check(CLI::IsMember({"connect", "idle", "commands", "renew"}));
  app.add_option("--report", report_path, "Write the report as JSON to this file");
  app.add_option("--key-pool", options.key_pool,
                 "Renew with one of K pre-generated RSA keys instead of a new key per host "
                 "(results are flagged key_pool); 0 = real keys")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_option("--threads", options.threads, "Threads for commands, scans and journals")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--enroll-parallelism", options.enroll_parallelism, "Enrollments at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--heartbeat", heartbeat,
                 "Heartbeat interval unless the controller's Welcome sets a scan interval")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& what) {
    std::cerr << "certfleet-sim: " << what << "\n";
    return 2;
  };
  certfleet::common::LogLevel level;
  if (!certfleet::common::ParseLogLevel(log_level, &level)) {
    return fail("unknown --log-level '" + log_level + "'");
  }
  if (!sources.empty()) {
    auto parsed = certfleet::sim::ParseSources(sources);
    if (!parsed.ok()) return fail("--sources: " + std::string(parsed.status().message()));
    options.sources = std::move(*parsed);
  }
  auto parsed_rate = certfleet::sim::ParseRate(rate);
  if (!parsed_rate.ok())
    return fail("--connect-rate: " + std::string(parsed_rate.status().message()));
  options.connect_rate = *parsed_rate;
  for (auto [flag, text, out] : {std::tuple<const char*, const std::string*, absl::Duration*>{
                                     "--duration", &duration, &options.duration},
                                 {"--heartbeat", &heartbeat, &options.heartbeat_interval}}) {
    auto d = certfleet::common::ParseHumanDuration(*text);
    if (!d.ok()) return fail(std::string(flag) + ": " + std::string(d.status().message()));
    *out = *d;
  }
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    return fail("--heartbeat must be positive");
  }
  options.scenario = *certfleet::sim::ScenarioFromName(scenario);
  certfleet::common::InitLogging("sim", level);
  // Debian's Abseil checks lock order at run time: a graph node for every mutex ever held and an
  // edge for every pair held together. With thousands of agents (several mutexes each) that is
  // memory and CPU spent on the simulator itself (the agent and controller keep the checks).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  if (absl::Status s = certfleet::sim::EnsureFileDescriptors(options.agents); !s.ok()) {
    std::cerr << "certfleet-sim: " << s.message() << "\n";
    return 1;
  }

  certfleet::common::RealClock clock;
  certfleet::sim::Simulator simulator(options, clock);
  absl::Mutex mu;
  bool signalled = false;
  bool finished = false;
  std::thread signals = certfleet::common::HandleTerminationSignals([&](int sig) {
    absl::MutexLock lock(&mu);
    if (finished) return;
    certfleet::common::LogInfo("received signal ", sig, "; stopping");
    signalled = true;
    simulator.Stop();
  });
  absl::StatusOr<certfleet::sim::Report> report = simulator.Run();
  {
    absl::MutexLock lock(&mu);
    finished = true;
    if (!signalled) kill(getpid(), SIGTERM);  // releases the signal thread
  }
  signals.join();
  if (!report.ok()) {
    std::cerr << "certfleet-sim: " << report.status().message() << "\n";
    return 1;
  }
  std::cout << certfleet::sim::SummaryLine(*report) << std::endl;
  if (!report_path.empty()) {
    if (absl::Status s = certfleet::common::WriteFileAtomically(
            report_path, certfleet::sim::ReportJson(*report), 0644);
        !s.ok()) {
      std::cerr << "certfleet-sim: writing the report: " << s.message() << "\n";
      return 1;
    }
  }
  // The scenario's goal, where it has one, decides the exit status.
  if (options.scenario == certfleet::sim::Scenario::kConnect &&
      report->connected_ever < report->agents_requested) {
    return 3;
  }
  if (options.scenario == certfleet::sim::Scenario::kRenew &&
      report->renewals_completed < report->agents_requested) {
    return 3;
  }
  return 0;
}
