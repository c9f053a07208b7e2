// agent_bench: the agent's idle footprint and its scan time (tools/bench/agent_bench.h).
// Parses the command line, runs, prints the tables. Exit status: 0 when every target was met
// (--smoke: when every figure is sane), 3 when a target was missed, 1 on an error.

#include <cstdlib>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging/log.h"
#include "tools/bench/agent_bench.h"
#include "tools/bench/bench_support.h"

namespace {

using certfleet::bench::BenchReport;

int Fail(const std::string& what) {
  std::cerr << "agent_bench: " << what << "\n";
  return 1;
}

// --smoke: the figures must be plausible, whatever the machine.
std::string CheckScanSane(const BenchReport& report) {
  for (const auto& row : report.rows) {
    if (!(row.value > 0 && row.value < 30)) return absl::StrCat(row.figure, " is implausible");
    if (!(row.baseline_value > 0)) return absl::StrCat(row.baseline, " is implausible");
  }
  return "";
}

std::string CheckIdleSane(const BenchReport& report) {
  for (const auto& row : report.rows) {
    if (row.unit == "MB" && !(row.value > 0.5 && row.value < 1024)) {
      return absl::StrCat(row.figure, " is implausible");
    }
    if (row.unit == "MB" && !(row.baseline_value > 0.05 && row.baseline_value < 1024)) {
      return absl::StrCat(row.baseline, " is implausible");
    }
    if (row.unit != "MB" && !(row.value >= 0 && row.value < 100)) {
      return absl::StrCat(row.figure, " is implausible");
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "agent_bench: a real certfleet-agent's idle RSS and CPU on loopback, and the time of a "
      "lab-store scan, each against a baseline measured in the same run"};
  bool smoke = false;
  std::string part = "all";
  certfleet::bench::AgentScanOptions scan;
  certfleet::bench::AgentIdleOptions idle;
  idle.controller_bin = CERTFLEET_CONTROLLER_BIN;
  idle.agent_bin = CERTFLEET_AGENT_BIN;
  idle.ctl_bin = CERTFLEETCTL_BIN;
  idle.grpc_client_bin = AGENT_BENCH_GRPC_CLIENT_BIN;
  double idle_seconds = 20;
  bool keep = false;
  app.add_flag("--smoke", smoke,
               "Tiny sizes and short periods; check that the figures are sane (for ctest)");
  app.add_option("--part", part, "scan, idle or all")
      ->check(CLI::IsMember({"scan", "idle", "all"}))
      ->capture_default_str();
  app.add_option("--certificates", scan.certificates, "Certificates in My")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--keys", scan.distinct_keys, "Distinct RSA-2048 keys among them")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--rounds", scan.rounds, "Scan rounds (fresh platform each)")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_option("--idle-seconds", idle_seconds, "Idle period")
      ->check(CLI::Range(1.0, 600.0))
      ->capture_default_str();
  app.add_option("--controller-bin", idle.controller_bin)->capture_default_str();
  app.add_option("--agent-bin", idle.agent_bin)->capture_default_str();
  app.add_option("--ctl-bin", idle.ctl_bin)->capture_default_str();
  app.add_option("--grpc-client-bin", idle.grpc_client_bin, "Empty: skip that baseline")
      ->capture_default_str();
  app.add_flag("--keep", keep, "Keep the temporary directory");
  CLI11_PARSE(app, argc, argv);

  certfleet::common::InitLogging("agent_bench", certfleet::common::LogLevel::kWarning);
  idle.idle = absl::Seconds(idle_seconds);
  if (smoke) {
    scan.certificates = 30;
    scan.distinct_keys = 2;
    scan.rounds = 1;
    scan.repeat_scans = 1;
    idle.settle = absl::Milliseconds(500);
    idle.idle = absl::Seconds(1);
  }

  auto dir = certfleet::bench::TempDir::Create("certfleet-agent-bench");
  if (!dir.ok()) return Fail(std::string(dir.status().message()));
  if (keep) dir->Keep();
  bool met = true;
  if (part == "scan" || part == "all") {
    scan.work_dir = dir->path() + "/scan";
    absl::StatusOr<BenchReport> report = certfleet::bench::RunAgentScanBench(scan);
    if (!report.ok()) {
      dir->Keep();
      return Fail(absl::StrCat("scan: ", report.status().message(), " (files kept in ",
                               dir->path(), ")"));
    }
    std::cout << certfleet::bench::FormatReport(*report) << std::endl;
    if (smoke) {
      if (std::string bad = CheckScanSane(*report); !bad.empty()) return Fail(bad);
    }
    met = met && report->AllTargetsMet();
  }
  if (part == "idle" || part == "all") {
    idle.work_dir = dir->path() + "/idle";
    absl::StatusOr<BenchReport> report = certfleet::bench::RunAgentIdleBench(idle);
    if (!report.ok()) {
      dir->Keep();
      return Fail(absl::StrCat("idle: ", report.status().message(), " (logs kept in ",
                               dir->path(), ")"));
    }
    std::cout << certfleet::bench::FormatReport(*report) << std::endl;
    if (smoke) {
      if (std::string bad = CheckIdleSane(*report); !bad.empty()) return Fail(bad);
    }
    met = met && report->AllTargetsMet();
  }
  if (smoke) return 0;
  return met ? 0 : 3;
}
