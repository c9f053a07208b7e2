#pragma once

// Benchmarks of the agent (issue 6, item 7):
//
// - Idle footprint: a real certfleet-agent process enrolled with a real certfleet-controller
//   on loopback, holding its mutual-TLS stream with nothing to do. Its resident set (VmRSS of
//   /proc/PID/status) and CPU time (utime + stime of /proc/PID/stat) over the idle period,
//   against a trivial process (/bin/sleep) and a bare gRPC mutual-TLS client holding one idle
//   stream to the same controller with the same identity (agent_bench_grpc_client).
// - Scan: agent::inventory::ScanHost over a LabHostPlatform whose My store holds N
//   certificates, each file a certificate with its private key (the expensive case: the lab
//   checks every key against its certificate); the first scan (a fresh platform, as at agent
//   start) and a repeat scan (nothing changed), against reading and PEM-decoding the same files
//   with OpenSSL and nothing else.
//
// Both run on loopback and in a temporary directory, bounded in time.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/bench/bench_support.h"

namespace certfleet::bench {

struct AgentScanOptions {
  // Certificates in My, each with its private key.
  int certificates = 1000;
  // Distinct RSA-2048 keys the certificates are made for (generating a thousand keys would take
  // minutes; decoding a key costs the same whichever key it is).
  int distinct_keys = 16;
  // Each round opens a fresh LabHostPlatform (no cache), scans once (first scan) then
  // `repeat_scans` more times. Figures are medians over the rounds.
  int rounds = 3;
  int repeat_scans = 3;
  // Where the lab host is written (a fresh empty directory).
  std::string work_dir;
  // The targets, in seconds.
  absl::Duration first_scan_target = absl::Seconds(1);
  absl::Duration repeat_scan_target = absl::Seconds(1);
};

// InvalidArgument for sizes below 1; the platform's and OpenSSL's errors otherwise; Internal
// when a scan does not report every certificate it was given, or reports an error.
absl::StatusOr<BenchReport> RunAgentScanBench(const AgentScanOptions& options);

struct AgentIdleOptions {
  std::string controller_bin;
  std::string agent_bin;
  std::string ctl_bin;
  std::string grpc_client_bin;  // agent_bench_grpc_client; empty: that baseline is skipped
  std::string sleep_bin = "/bin/sleep";
  // A fresh empty directory for the controller's state, the lab host and the logs.
  std::string work_dir;
  // After the agent connected, before the idle period starts (its first inventory).
  absl::Duration settle = absl::Seconds(3);
  // How long CPU time is counted; RSS is read at its end.
  absl::Duration idle = absl::Seconds(20);
  // Longest wait for the controller to listen and for the agent to connect.
  absl::Duration startup_timeout = absl::Seconds(60);
  // The target for the agent's idle RSS.
  int64_t rss_target_kb = 15 * 1024;
};

// Unavailable when a process cannot be started or does not come up within startup_timeout
// (the message holds its log's tail); the errors of /proc otherwise.
absl::StatusOr<BenchReport> RunAgentIdleBench(const AgentIdleOptions& options);

}  // namespace certfleet::bench
