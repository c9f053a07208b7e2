// certfleet-agent: one per host. Parses the command line, builds the platform, runs the agent.

#include <signal.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/random/random.h"
#include "agent/agent.h"
#include "agent/platform/lab/lab_host_platform.h"
#include "common/logging/log.h"
#include "common/process/signals.h"
#include "common/time/clock.h"
#include "common/time/format.h"

int main(int argc, char** argv) {
  CLI::App app{
      "certfleet-agent: reports the SCOM certificates of this host to the certfleet controller\n"
      "and carries out its commands. Enrolls with --token on first start (the key is made\n"
      "here; the token pins the controller's CA), then keeps one mutual-TLS stream open,\n"
      "reconnecting with backoff. Renews its identity by itself at about half its lifetime\n"
      "(30 days by default). If the identity expired while the agent was offline, the agent\n"
      "refuses to start and says so: create a re-enrollment token with\n"
      "`certfleetctl tokens create --agent ID` and start the agent once with --token; it keeps\n"
      "its agent id. Stops cleanly on SIGTERM."};
  app.set_version_flag("--version", CERTFLEET_VERSION);
  std::string controller, state_dir, platform = "lab", lab_root, fqdn, token, token_file;
  std::string scan_interval, warn_days_text, log_level = "info", max_backoff = "30s";
  int warn_days = 30;
  app.add_option("--controller", controller, "Controller address HOST:PORT")->required();
  app.add_option("--state-dir", state_dir, "Where the agent keeps its identity")->required();
  app.add_option("--platform", platform, "Host platform: lab")
      ->capture_default_str()
      ->check(CLI::IsMember({"lab"}));
  app.add_option("--lab-root", lab_root, "Root of the lab host (--platform lab)");
  app.add_option("--fqdn", fqdn, "This host's FQDN, as SCOM compares it")->required();
  app.add_option("--token", token,
                 "Join token, for the first start; or a re-enrollment token after the identity "
                 "expired (ignored while the identity is valid)");
  app.add_option("--token-file", token_file, "File holding the token");
  app.add_option("--scan-interval", scan_interval,
                 "Inventory interval (e.g. 30s, 5m); default: the controller's, else 60s");
  app.add_option("--warn-days", warn_days, "EXPIRES_SOON threshold in days")
      ->capture_default_str()
      ->check(CLI::Range(0, 3650));
  app.add_option("--max-backoff", max_backoff, "Longest wait between reconnects")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  certfleet::common::LogLevel level;
  if (!certfleet::common::ParseLogLevel(log_level, &level)) {
    std::cerr << "certfleet-agent: unknown --log-level '" << log_level << "'\n";
    return 2;
  }
  certfleet::agent::AgentOptions options;
  options.controller = controller;
  options.state_dir = state_dir;
  options.warn_within = absl::Hours(24 * warn_days);
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in || !std::getline(in, token)) {
      std::cerr << "certfleet-agent: cannot read --token-file " << token_file << "\n";
      return 2;
    }
  }
  options.token = token;
  if (!scan_interval.empty()) {
    auto d = certfleet::common::ParseHumanDuration(scan_interval);
    if (!d.ok() || *d < absl::Seconds(1)) {
      std::cerr << "certfleet-agent: --scan-interval: "
                << (d.ok() ? "must be at least 1s" : std::string(d.status().message())) << "\n";
      return 2;
    }
    options.scan_interval = *d;
  }
  auto backoff = certfleet::common::ParseHumanDuration(max_backoff);
  if (!backoff.ok() || *backoff < absl::Milliseconds(100)) {
    std::cerr << "certfleet-agent: --max-backoff must be a duration of at least 100ms\n";
    return 2;
  }
  options.max_backoff = *backoff;
  if (lab_root.empty()) {
    std::cerr << "certfleet-agent: --platform lab needs --lab-root\n";
    return 2;
  }

  certfleet::common::InitLogging("agent", level);
  certfleet::common::RealClock clock;
  certfleet::agent::platform::LabOptions lab_options;
  lab_options.root = lab_root;
  lab_options.fqdn = fqdn;
  auto host = certfleet::agent::platform::LabHostPlatform::Open(
      lab_options, certfleet::agent::platform::LabDeps{clock});
  if (!host.ok()) {
    certfleet::common::LogError("cannot open the lab host: ", host.status().ToString());
    return 1;
  }

  absl::BitGen random;
  certfleet::agent::Agent agent(options, certfleet::agent::AgentDeps{**host, clock, random});
  std::thread signals = certfleet::common::HandleTerminationSignals([&](int sig) {
    certfleet::common::LogInfo("received signal ", sig, "; stopping");
    agent.Stop();
  });
  absl::Status s = agent.Run();
  // Before the signal thread is released below (it logs the signal it is released with).
  if (!s.ok()) certfleet::common::LogError(s.ToString());
  // Release the signal thread when Run ended on its own.
  agent.Stop();
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  if (!s.ok()) return 1;
  certfleet::common::LogInfo("agent stopped");
  return 0;
}
